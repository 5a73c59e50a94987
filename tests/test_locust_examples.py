"""Locustfiles in the style of Locust's own examples, run as real lcore processes.

Each one exercises a feature family that Locust users lean on (task sets, custom clients that
fire ``events.request`` by hand, event hooks and custom options across workers, load shapes, a
greenlet on the master that ends the run) and checks the exit code and what was recorded
against what the embedded target served.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_engine import free_port, read_stats_csv, write

from lcore.target import Target

pytestmark = pytest.mark.integration


def run_file(
    tmp_path: Path, run_lcore: Callable[..., Any], target: Target, source: str, *args: str
) -> tuple[str, dict[str, dict[str, str]], float]:
    """Run ``source`` headless against the target; returns (output, stats rows, seconds)."""
    locustfile = write(tmp_path, source)
    prefix = tmp_path / "run"
    started = time.monotonic()
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web",
        "--master-bind-port", str(free_port()), "--csv", str(prefix), *args,
    )  # fmt: skip
    code = proc.wait(60)
    elapsed = time.monotonic() - started
    out = proc.output
    assert code == 0, out[-4000:]
    assert "Uncaught error in event handler" not in out, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    return out, read_stats_csv(prefix), elapsed


def count(rows: dict[str, dict[str, str]], name: str) -> int:
    return int(rows[name]["Request Count"])


TASK_SETS = """
import random

from locust import HttpUser, SequentialTaskSet, TaskSet, between, constant_pacing, task


def first_page(ts):
    ts.client.get("/classic/a")


def second_page(ts):
    ts.client.get("/classic/b")


class Classic(TaskSet):
    tasks = [first_page, second_page]

    @task
    def third_page(self):
        self.client.get("/classic/c")


class ClassicUser(HttpUser):
    tasks = [Classic]
    wait_time = lambda self: random.expovariate(50)  # noqa: E731


class NestedUser(HttpUser):
    wait_time = between(0.01, 0.02)

    @task
    class Outer(TaskSet):
        @task
        def outer(self):
            self.client.get("/nested/outer")

        @task
        class Inner(TaskSet):
            @task(4)
            def inner(self):
                self.client.get("/nested/inner")

            @task
            def leave(self):
                self.interrupt()


class Checkout(SequentialTaskSet):
    def on_start(self):
        self.client.post("/seq/login", {"username": "someone", "password": "secret"})

    @task
    def step_one(self):
        self.client.get("/seq/1")

    @task
    def step_two(self):
        self.client.get("/seq/2")

    @task
    def step_three(self):
        self.client.get("/seq/3")


class SequentialUser(HttpUser):
    tasks = [Checkout]
    wait_time = constant_pacing(0.05)
"""


def test_task_sets_nested_sequential_and_plain_functions(tmp_path, target, run_lcore) -> None:
    _, rows, _ = run_file(tmp_path, run_lcore, target, TASK_SETS, "-u", "6", "-r", "60", "-t", "3s")
    served = target.counts()
    paths = [
        "/classic/a",
        "/classic/b",
        "/classic/c",
        "/nested/outer",
        "/nested/inner",
        "/seq/1",
        "/seq/2",
        "/seq/3",
    ]
    for path in paths:
        assert count(rows, path) == served[("GET", path)] > 0, path
    # two users of each class; a sequence's on_start runs once per user, its steps in order
    assert count(rows, "/seq/login") == served[("POST", "/seq/login")] == 2
    one, two, three = (count(rows, f"/seq/{i}") for i in (1, 2, 3))
    assert one >= two >= three >= one - 2
    assert count(rows, "Aggregated") == sum(served.values())


CUSTOM_CLIENT = """
import http.client
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from locust import User, constant, events, task


class PlainClient:
    \"\"\"Speaks HTTP through the standard library and reports every call itself.\"\"\"

    def __init__(self, base_url, request_event):
        parts = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self._request_event = request_event

    def call(self, path):
        started = time.perf_counter()
        meta = {"request_type": "PLAIN", "name": path, "response_length": 0, "context": {}, "exception": None}
        try:
            self._connection.request("GET", path)
            meta["response"] = self._connection.getresponse()
            meta["response_length"] = len(meta["response"].read())
        except Exception as e:
            meta["exception"] = e
        meta["response_time"] = (time.perf_counter() - started) * 1000
        self._request_event.fire(**meta)


@contextmanager
def measured(name):
    started = time.perf_counter()
    failure = None
    try:
        yield
    except Exception as e:
        failure = e
        raise
    finally:
        events.request.fire(
            request_type="block", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=failure,
        )


class PlainUser(User):
    wait_time = constant(0.02)

    def __init__(self, environment):
        super().__init__(environment)
        self.client = PlainClient(self.host, environment.events.request)

    @task(2)
    def ping(self):
        self.client.call("/plain/ping")

    @task
    def pair(self):
        with measured("pair of calls"):
            self.client.call("/plain/one")
            self.client.call("/plain/two")
"""


def test_custom_client_fires_request_events_by_hand(tmp_path, target, run_lcore) -> None:
    users = 2
    _, rows, _ = run_file(
        tmp_path, run_lcore, target, CUSTOM_CLIENT, "-u", str(users), "-r", "20", "-t", "3s"
    )
    served = target.counts()
    for path in ("/plain/ping", "/plain/one", "/plain/two"):
        assert rows[path]["Type"] == "PLAIN"
        # the engine cannot see inside a custom client, so a user stopped at the end may
        # leave one request served but not reported
        assert 0 <= served[("GET", path)] - count(rows, path) <= users, path
        assert count(rows, path) > 10
    assert rows["pair of calls"]["Type"] == "block"
    assert 0 <= count(rows, "/plain/one") - count(rows, "pair of calls") <= users
    assert int(rows["Aggregated"]["Failure Count"]) == 0


EVENT_HOOKS = """
from locust import HttpUser, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

received = {"bytes": 0}
acks = []


@events.init_command_line_parser.add_listener
def add_options(parser):
    parser.add_argument("--payload-size", type=int, default=10, help="bytes per response")


@events.init.add_listener
def on_init(environment, **_kwargs):
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def on_hello(environment, msg, **_kwargs):
            size = environment.parsed_options.payload_size
            environment.runner.send_message("ack", {"index": environment.runner.worker_index, "size": size})

        runner.register_message("hello", on_hello)
    elif isinstance(runner, MasterRunner):
        runner.register_message("ack", lambda msg, **_kwargs: acks.append(msg.data))


@events.test_start.add_listener
def greet_workers(environment, **_kwargs):
    if isinstance(environment.runner, MasterRunner):
        assert environment.runner.worker_count == 2
        for client_id in environment.runner.clients:
            environment.runner.send_message("hello", None, client_id)


@events.request.add_listener
def on_request(response_length, exception, **_kwargs):
    if exception is None:
        received["bytes"] += response_length


@events.report_to_master.add_listener
def on_report_to_master(client_id, data):
    data["bytes"] = received["bytes"]
    received["bytes"] = 0


@events.worker_report.add_listener
def on_worker_report(client_id, data):
    received["bytes"] += data.get("bytes", 0)


@events.quitting.add_listener
def on_quitting(environment, **_kwargs):
    if isinstance(environment.runner, MasterRunner):
        print(f"BYTES {received['bytes']}")
        print(f"ACKS {sorted((a['index'], a['size']) for a in acks)}")


class Sized(HttpUser):
    wait_time = constant(0.02)

    @task
    def fetch(self):
        self.client.get(f"/bytes/{self.environment.parsed_options.payload_size}", name="/bytes")
"""


def test_event_hooks_custom_option_and_messages_across_workers(tmp_path, target, run_lcore) -> None:
    out, rows, _ = run_file(
        tmp_path, run_lcore, target, EVENT_HOOKS,
        "-u", "4", "-r", "40", "-t", "3s", "--processes", "2", "--payload-size", "37",
    )  # fmt: skip
    requests = count(rows, "/bytes")
    assert requests == target.counts()[("GET", "/bytes/37")] > 10
    # every worker's extra report data reached the master's worker_report listener
    assert re.search(r"^BYTES (\d+)$", out, re.M).group(1) == str(37 * requests)
    # each worker got the master's message and answered with its own index and the option
    assert "ACKS [(0, 37), (1, 37)]" in out


SHAPE = """
import gevent

from locust import HttpUser, LoadTestShape, constant, events, task
from locust.runners import MasterRunner

peak = {"users": 0}


class Paced(HttpUser):
    wait_time = constant(0.05)

    @task
    def shaped(self):
        self.client.get("/shaped")


class TwoSteps(LoadTestShape):
    steps = [(1.0, 2, 10), (4.0, 4, 10)]

    def tick(self):
        run_time = self.get_run_time()
        for until, users, spawn_rate in self.steps:
            if run_time < until:
                return users, spawn_rate
        return None


@events.init.add_listener
def watch_users(environment, **_kwargs):
    if isinstance(environment.runner, MasterRunner):

        def sample():
            while True:
                peak["users"] = max(peak["users"], environment.runner.user_count)
                gevent.sleep(0.1)

        gevent.spawn(sample)


@events.quitting.add_listener
def report_peak(environment, **_kwargs):
    if isinstance(environment.runner, MasterRunner):
        print(f"PEAK {peak['users']}")
"""


def test_load_shape_steps_users_and_ends_the_run(tmp_path, target, run_lcore) -> None:
    out, rows, elapsed = run_file(tmp_path, run_lcore, target, SHAPE, "-t", "60s")
    assert "PEAK 4" in out
    assert count(rows, "/shaped") == target.counts()[("GET", "/shaped")] > 10
    # the shape's None ended the test long before --run-time
    assert elapsed < 30


WATCHER = """
import time

import gevent

from locust import HttpUser, constant, events, task
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, WorkerRunner


class Busy(HttpUser):
    wait_time = constant(0.01)

    @task
    def watched(self):
        self.client.get("/watched")


def watch(environment):
    while environment.runner.state not in (STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP):
        time.sleep(0.1)
        if environment.runner.stats.total.num_requests >= 200:
            print(f"QUITTING after {environment.runner.stats.total.num_requests}")
            environment.runner.quit()
            return


@events.init.add_listener
def on_init(environment, **_kwargs):
    if not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(watch, environment)
"""


def test_greenlet_on_the_master_watches_stats_and_quits(tmp_path, target, run_lcore) -> None:
    out, rows, elapsed = run_file(
        tmp_path, run_lcore, target, WATCHER, "-u", "3", "-r", "30", "-t", "60s"
    )
    assert "QUITTING after" in out
    assert count(rows, "/watched") == target.counts()[("GET", "/watched")] >= 200
    assert elapsed < 30


MARKOV_AND_REST = """
from locust import FastHttpUser, MarkovTaskSet, constant, transition, transitions


class Shopper(MarkovTaskSet):
    @transitions({"browse": 3, "cart": 1})
    def browse(self):
        self.client.get("/shop/browse")

    @transitions(["browse", ("checkout", 1)])
    def cart(self):
        with self.user.rest("POST", "/echo", json={"item": 1}, name="/shop/cart") as resp:
            assert resp.js["method"] == "POST"
            if resp.js["body"] != '{"item": 1}':
                resp.failure("body lost")

    @transition("browse")
    def checkout(self):
        with self.user.rest("GET", "/shop/checkout") as resp:
            pass  # "ok" is not JSON: a failure, recorded, and the chain goes on


class User(FastHttpUser):
    wait_time = constant(0.01)
    tasks = [Shopper]
"""


def test_markov_task_set_and_rest_helper(tmp_path, target, run_lcore) -> None:
    locustfile = write(tmp_path, MARKOV_AND_REST)
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web",
        "--master-bind-port", str(free_port()), "--csv", str(prefix),
        "-u", "4", "-r", "40", "-t", "3s",
    )  # fmt: skip
    code = proc.wait(60)
    assert code == 1, proc.output[-4000:]  # the checkout failures set the exit code
    rows = read_stats_csv(prefix)
    served = target.counts()
    assert count(rows, "/shop/browse") == served[("GET", "/shop/browse")] > 0
    assert count(rows, "/shop/cart") == served[("POST", "/echo")] > 0
    assert int(rows["/shop/cart"]["Failure Count"]) == 0
    checkout = rows["/shop/checkout"]
    assert int(checkout["Failure Count"]) == int(checkout["Request Count"]) > 0
    failures = (tmp_path / "run_failures.csv").read_text()
    assert "Could not parse response as JSON" in failures
