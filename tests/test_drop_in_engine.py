"""The engine behaves as Locust's at the edges real locustfiles touch (issue 12, part 1).

Users that end themselves are spent, StopTest ends the run, init listeners that raise are
fatal, -i/--iterations is exact across workers, shapes own -t, locustfile code on the master
never stalls it, and every event of Locust's Events fires with Locust's arguments. Each runs
real processes against the embedded target and counts what it served.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from test_engine import free_port, read_stats_csv, write

from lcore.iterations import TaskRunLease
from lcore.spent import SpentSlots

pytestmark = pytest.mark.integration


def headless(tmp_path, run_lcore, target, source: str, *args: str, timeout: float = 60, env=None):
    locustfile = write(tmp_path, source)
    prefix = tmp_path / "run"
    started = time.monotonic()
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web",
        "--master-bind-port", str(free_port()), "--csv", str(prefix), *args, env=env,
    )  # fmt: skip
    code = proc.wait(timeout)
    return code, proc.output, prefix, time.monotonic() - started


THREE_REQUESTS_THEN_STOP = """
from locust import HttpUser, constant, task
from locust.exception import StopUser


class ThreeAndOut(HttpUser):
    wait_time = constant(0.02)

    def on_start(self):
        self.made = 0

    @task
    def page(self):
        self.client.get("/three")
        self.made += 1
        if self.made == 3:
            raise StopUser()
"""


@pytest.mark.parametrize("processes", ["1", "2"])
def test_users_that_stop_themselves_are_never_replaced(tmp_path, target, run_lcore, processes) -> None:
    code, out, prefix, _ = headless(
        tmp_path, run_lcore, target, THREE_REQUESTS_THEN_STOP,
        # -t well past the 1 s ramp: every user has its 3 requests even on a loaded machine
        # (CI once saw 6 in 3 s), and replacements, if any, would have time to add more
        "-u", "5", "-r", "5", "-t", "6s", "--processes", processes,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    assert target.counts()[("GET", "/three")] == 15
    assert int(read_stats_csv(prefix)["Aggregated"]["Request Count"]) == 15


SYNTHETIC_2000 = """
from locust import User, constant, events, task
from locust.exception import StopUser


class Synthetic(User):
    wait_time = constant(0)

    @task
    def burst(self):
        for _ in range(2000):
            events.request.fire(request_type="X", name="synthetic", response_time=1,
                                response_length=0, exception=None, context={})
        raise StopUser()
"""


def test_synthetic_users_that_stop_count_exactly(tmp_path, target, run_lcore) -> None:
    code, out, prefix, _ = headless(
        tmp_path, run_lcore, target, SYNTHETIC_2000, "-u", "4", "-r", "4", "-t", "3s", "--processes", "2"
    )
    assert code == 0, out[-3000:]
    assert int(read_stats_csv(prefix)["Aggregated"]["Request Count"]) == 8000


def test_a_worker_joining_later_does_not_refill_spent_slots(tmp_path, target, run_lcore) -> None:
    """The dispatcher moves slots to the newcomer; the ledger moves the spent charge with them."""
    locustfile = write(tmp_path, THREE_REQUESTS_THEN_STOP)
    port = free_port()
    prefix = tmp_path / "join"
    master = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--master", "--headless", "--no-web",
        "--expect-workers", "1", "-u", "6", "-r", "100", "-t", "6s",
        "--master-bind-port", str(port), "--csv", str(prefix),
    )  # fmt: skip
    first = run_lcore("-f", str(locustfile), "--worker", "--master-port", str(port))
    deadline = time.monotonic() + 20
    while target.counts().get(("GET", "/three"), 0) < 18 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert target.counts()[("GET", "/three")] == 18
    second = run_lcore("-f", str(locustfile), "--worker", "--master-port", str(port))
    master.wait_for_output("connected", timeout=20)
    assert master.wait(40) == 0, master.output[-3000:]
    assert first.wait(20) == 0 and second.wait(20) == 0
    assert len(re.findall(r"Worker \S+ \(.*pid \d+\) connected", master.output)) == 2
    assert target.counts()[("GET", "/three")] == 18
    assert int(read_stats_csv(prefix)["Aggregated"]["Request Count"]) == 18


STOP_TEST = """
from locust import HttpUser, constant, task
from locust.exception import StopTest


class Stopper(HttpUser):
    wait_time = constant(0.05)

    @task
    def page(self):
        self.client.get("/stoptest")
        if self.client is not None and getattr(self, "made", 0) == 4:
            raise StopTest("enough of this")
        self.made = getattr(self, "made", 0) + 1
"""


def test_stop_test_ends_the_whole_run(tmp_path, target, run_lcore) -> None:
    code, out, prefix, elapsed = headless(
        tmp_path, run_lcore, target, STOP_TEST, "-u", "3", "-r", "100", "-t", "60s", "--processes", "2"
    )
    assert code == 0, out[-3000:]
    assert elapsed < 30, "StopTest should have ended the run long before -t"
    assert "enough of this" in out
    assert 5 <= target.counts()[("GET", "/stoptest")] <= 15


INIT_RAISES = """
from locust import HttpUser, events, task


@events.init.add_listener
def broken(environment, **kwargs):
    raise RuntimeError("init listener broke on purpose")


class Never(HttpUser):
    @task
    def page(self):
        self.client.get("/never")
"""


def test_an_init_listener_that_raises_is_fatal(tmp_path, target, run_lcore) -> None:
    code, out, _, _ = headless(tmp_path, run_lcore, target, INIT_RAISES, "-u", "2", "-r", "10", "-t", "5s")
    assert code == 1, out[-3000:]
    assert out.count("init listener broke on purpose") == 2  # the traceback's last line and its message
    assert "exiting before any user starts" in out
    assert target.counts().get(("GET", "/never"), 0) == 0


INIT_RAISES_ON_WORKERS = """
from locust import HttpUser, events, task
from locust.runners import WorkerRunner


@events.init.add_listener
def broken(environment, **kwargs):
    if isinstance(environment.runner, WorkerRunner):
        raise RuntimeError("only workers break")


class Never(HttpUser):
    @task
    def page(self):
        self.client.get("/never")
"""


def test_an_init_listener_that_raises_on_a_worker_ends_the_run(tmp_path, target, run_lcore) -> None:
    code, out, _, elapsed = headless(
        tmp_path, run_lcore, target, INIT_RAISES_ON_WORKERS, "-u", "2", "-r", "10", "-t", "30s"
    )
    assert code == 1, out[-3000:]
    assert elapsed < 20
    assert "Restarting worker" not in out
    assert target.counts().get(("GET", "/never"), 0) == 0


ITERATIONS = """
from locust import HttpUser, constant, task


class Looper(HttpUser):
    wait_time = constant(0)

    @task(3)
    def a(self):
        self.client.get("/iter/a")

    @task
    def b(self):
        self.client.get("/iter/b")
"""


@pytest.mark.parametrize("processes", ["1", "2"])
def test_iterations_are_exact_across_workers(tmp_path, target, run_lcore, processes) -> None:
    code, out, prefix, elapsed = headless(
        tmp_path, run_lcore, target, ITERATIONS,
        "-u", "6", "-r", "100", "-i", "1501", "-t", "60s", "--processes", processes,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    assert elapsed < 40
    served = target.counts()
    assert served.get(("GET", "/iter/a"), 0) + served.get(("GET", "/iter/b"), 0) == 1501
    assert int(read_stats_csv(prefix)["Aggregated"]["Request Count"]) == 1501
    assert "Iteration limit reached" in out


SHAPE_LONGER_THAN_T = """
from locust import HttpUser, LoadTestShape, constant, task


class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def page(self):
        self.client.get("/shape")


class FourSeconds(LoadTestShape):
    def tick(self):
        return (2, 10) if self.get_run_time() < 4 else None
"""


def test_a_shape_decides_when_the_test_ends_not_run_time(tmp_path, target, run_lcore) -> None:
    code, out, _, elapsed = headless(tmp_path, run_lcore, target, SHAPE_LONGER_THAN_T, "-t", "1s")
    assert code == 0, out[-3000:]
    assert elapsed >= 4
    assert "will be ignored: --run-time" in out


MASTER_CODE_THAT_BLOCKS = """
import threading
import time

import gevent
from locust import HttpUser, constant, events, task
from locust.runners import MasterRunner, WorkerRunner


def slow_ack(environment, msg, **kwargs):
    gevent.sleep(10)  # Locust's custom_messages recipe with a slow master-side handler


def hello(environment, msg, **kwargs):
    environment.runner.send_message("ack", msg.data)


@events.init.add_listener
def setup(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message("ack", slow_ack)
        # a server greenlet that blocks in a threading primitive (grpc's wait_for_termination)
        gevent.spawn(threading.Event().wait)
        gevent.spawn(lambda: [time.sleep(0.5) for _ in iter(int, 1)])
    elif isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("hello", hello)


@events.test_start.add_listener
def greet(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message("hello", "hi")


class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def page(self):
        self.client.get("/blocking")
"""


def test_locustfile_code_on_the_master_never_stalls_it(tmp_path, target, run_lcore) -> None:
    code, out, prefix, elapsed = headless(
        tmp_path, run_lcore, target, MASTER_CODE_THAT_BLOCKS,
        "-u", "4", "-r", "100", "-t", "6s", "--processes", "2", "--heartbeat-timeout", "2",
    )  # fmt: skip
    assert code == 0, out[-3000:]
    assert "lost" not in out and "Restarting worker" not in out
    assert elapsed < 20
    served = target.counts()[("GET", "/blocking")]
    assert served == int(read_stats_csv(prefix)["Aggregated"]["Request Count"]) > 100


EVENTS = """
import json
import os

from locust import HttpUser, constant, events, task
from locust.runners import MasterRunner

seen = {}


def note(name):
    def listener(**kwargs):
        entry = seen.setdefault(name, sorted(kwargs))
        assert entry == sorted(kwargs), (name, kwargs)
    return listener


for name in ("heartbeat_sent", "heartbeat_received", "usage_monitor", "test_stopping",
             "worker_connect", "test_start", "test_stop", "spawning_complete"):
    getattr(events, name).add_listener(note(name))


@events.quitting.add_listener
def dump(environment, **kwargs):
    role = "master" if isinstance(environment.runner, MasterRunner) else "worker"
    with open(os.path.join(os.environ["EVENTS_DIR"], role + ".json"), "w") as f:
        json.dump(seen, f)


class Steady(HttpUser):
    wait_time = constant(0.5)

    @task
    def page(self):
        self.client.get("/events")
"""


def test_every_locust_event_fires_with_locusts_arguments(tmp_path, target, run_lcore) -> None:
    import json

    locustfile = write(tmp_path, EVENTS)
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web", "-u", "2", "-r", "10",
        "-t", "11s", "--master-bind-port", str(free_port()), env={"EVENTS_DIR": str(tmp_path)},
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-3000:]
    master = json.loads((tmp_path / "master.json").read_text())
    worker = json.loads((tmp_path / "worker.json").read_text())
    assert master["heartbeat_sent"] == ["client_id", "timestamp"]
    assert master["worker_connect"] == ["client_id"]
    assert master["test_stopping"] == ["environment"]
    assert master["spawning_complete"] == ["user_count"]
    assert master["usage_monitor"] == ["cpu_usage", "environment", "memory_usage"]
    assert worker["heartbeat_received"] == ["client_id", "timestamp"]
    assert worker["usage_monitor"] == ["cpu_usage", "environment", "memory_usage"]
    assert worker["test_stopping"] == ["environment"] and worker["test_start"] == ["environment"]


# --- the pure parts ---------------------------------------------------------------------


def test_spent_charge_follows_slots_that_move() -> None:
    ledger = SpentSlots()
    before = {"w1": {"A": 4}}
    assert ledger.ended("w1", {"A": 4})
    after = {"w1": {"A": 2}, "w2": {"A": 2}}
    assert ledger.settle(before, after) == {"w1", "w2"}
    assert ledger.charge("w1") == {"A": 2} and ledger.charge("w2") == {"A": 2}
    # ramp-down removes spent slots: the excess is dropped, nothing goes negative
    assert ledger.settle(after, {"w1": {"A": 1}, "w2": {"A": 1}}) == {"w1", "w2"}
    assert ledger.total() == {"A": 2}
    # a worker that leaves hands its charge to the slots the others gained
    ledger.settle({"w1": {"A": 1}, "w2": {"A": 1}}, {"w2": {"A": 2}})
    assert ledger.charge("w2") == {"A": 2}
    # endings already counted are not counted twice
    assert not ledger.ended("w1", {"A": 4})


def test_task_run_lease_stops_users_when_the_master_has_no_more() -> None:
    asked: list[int] = []
    lease = TaskRunLease(asked.append, lambda: 2)
    exhausted: list[bool] = []
    lease.on_exhausted = lambda: exhausted.append(True)
    lease.granted(3, last=True)
    for _ in range(3):
        lease.take()
    assert exhausted == [True]
    from lcore.exception import StopUser

    with pytest.raises(StopUser):
        lease.take()
    assert lease.ran == 3 and asked == []


CONFIG_USERS = """
from locust import HttpUser, constant, task


class Shop(HttpUser):
    wait_time = constant(0.1)

    @task
    def browse(self):
        self.client.get("/cfg/browse")

    @task
    def buy(self):
        self.client.get("/cfg/buy")


class Admin(HttpUser):
    wait_time = constant(0.1)

    @task
    def admin(self):
        self.client.get("/cfg/admin")
"""


def test_config_users_sets_classes_as_locust_does(tmp_path, target, run_lcore) -> None:
    config = '{"user_class_name": "Shop", "fixed_count": 3, "tasks": ["buy"]}'
    code, out, prefix, _ = headless(
        tmp_path, run_lcore, target, CONFIG_USERS,
        "-u", "3", "-r", "100", "-t", "2s", "--config-users", config, "--profile", "nightly",
        "--html", str(tmp_path / "report.html"),
    )  # fmt: skip
    assert code == 0, out[-3000:]
    served = target.counts()
    assert served.get(("GET", "/cfg/buy"), 0) > 0
    assert served.get(("GET", "/cfg/browse"), 0) == 0 and served.get(("GET", "/cfg/admin"), 0) == 0
    assert "nightly" in (tmp_path / "report.html").read_text()


def test_config_users_mistakes_are_one_line_errors(tmp_path, target, run_lcore) -> None:
    code, out, _, _ = headless(
        tmp_path, run_lcore, target, CONFIG_USERS, "-t", "1s", "--config-users", '{"user_class_name": "Nope"}'
    )
    assert code == 1 and "'Nope', which is not a User class" in out and "Traceback" not in out
    code, out, _, _ = headless(tmp_path, run_lcore, target, CONFIG_USERS, "--config-users", "{bad")
    assert code == 1 and "must be a valid JSON string or file" in out and "Traceback" not in out


GRPC_SERVER_ON_THE_MASTER = """
import os
import time
from concurrent import futures

import gevent
import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, constant, events, task
from locust.runners import MasterRunner

grpc_gevent.init_gevent()
ADDRESS = "127.0.0.1:" + os.environ["GRPC_PORT"]


def greet(request, context):
    time.sleep(0.05)
    return b"hello " + request


def serve():
    # as Locust's grpc example: start a server, then block in wait_for_termination()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.unary_unary_rpc_method_handler(greet)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("lcore.Echo", {"Greet": handler}),))
    server.add_insecure_port(ADDRESS)
    server.start()
    server.wait_for_termination()


@events.init.add_listener
def start_server(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        gevent.spawn(serve)


class Caller(User):
    wait_time = constant(0.05)

    def on_start(self):
        self.greet = grpc.insecure_channel(ADDRESS).unary_unary("/lcore.Echo/Greet")

    @task
    def call(self):
        started = time.perf_counter()
        error = None
        try:
            answer = self.greet(b"lcore", timeout=5)
        except grpc.RpcError as e:
            error, answer = e, b""
        self.environment.events.request.fire(
            request_type="grpc", name="Greet", response_time=(time.perf_counter() - started) * 1000,
            response_length=len(answer), exception=error, context={},
        )
"""


def test_locusts_grpc_recipe_a_server_blocking_on_the_master(tmp_path, target, run_lcore) -> None:
    if not os.environ.get("CI"):
        pytest.importorskip("grpc")
    code, out, prefix, elapsed = headless(
        tmp_path, run_lcore, target, GRPC_SERVER_ON_THE_MASTER,
        "-u", "3", "-r", "100", "-t", "4s", "--processes", "2",
        env={"GRPC_PORT": str(free_port())},
    )  # fmt: skip
    assert code == 0, out[-3000:]
    assert elapsed < 20
    row = read_stats_csv(prefix)["Greet"]
    assert int(row["Request Count"]) > 20 and int(row["Failure Count"]) == 0


NO_SUPER = """
from locust import User, constant, task


class Forgetful(User):
    wait_time = constant(1)

    def __init__(self, environment):
        self.connection = None  # no super().__init__(environment)

    @task
    def t(self):
        pass
"""


def test_a_user_init_without_super_gets_locusts_message(tmp_path, target, run_lcore) -> None:
    code, out, _, _ = headless(tmp_path, run_lcore, target, NO_SUPER, "-u", "2", "-r", "10", "-t", "2s")
    assert code == 1, out[-3000:]
    assert "Attribute 'environment' is missing on user Forgetful" in out
    assert "Traceback" not in out


CSV_EVERY_SECOND = """
from locust import HttpUser, constant, task
from locust import stats

stats.CSV_STATS_INTERVAL_SEC = 0.5


class Steady(HttpUser):
    wait_time = constant(0.05)

    @task
    def page(self):
        self.client.get("/csv-live")
"""


def test_csv_files_are_rewritten_while_the_test_runs(tmp_path, target, run_lcore) -> None:
    locustfile = write(tmp_path, CSV_EVERY_SECOND)
    prefix = tmp_path / "live"
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web", "-u", "2", "-r", "10",
        "-t", "30s", "--csv", str(prefix), "--master-bind-port", str(free_port()),
    )  # fmt: skip
    deadline = time.monotonic() + 20
    rows: dict = {}
    while time.monotonic() < deadline:
        try:
            rows = read_stats_csv(prefix)
        except (OSError, KeyError, ValueError):
            rows = {}
        if int(rows.get("/csv-live", {}).get("Request Count", 0) or 0) > 0:
            break
        time.sleep(0.1)
    assert int(rows["/csv-live"]["Request Count"]) > 0
    assert proc.proc.poll() is None  # still running: the file was written during the test
    assert (tmp_path / "live_failures.csv").exists() and (tmp_path / "live_exceptions.csv").exists()


def test_several_locustfiles_a_directory_or_a_list(tmp_path, target, run_lcore) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("a", "b"):
        (suite / f"{name}_users.py").write_text(
            "from locust import HttpUser, constant, task\n\n\n"
            f"class {name.upper()}(HttpUser):\n    wait_time = constant(0.1)\n\n"
            f"    @task\n    def t(self):\n        self.client.get('/multi/{name}')\n"
        )
    (suite / "_helpers.py").write_text("raise RuntimeError('a _ file is not a locustfile')\n")
    for spec in (str(suite), f"{suite}/a_users.py,{suite}/b_users.py"):
        prefix = tmp_path / "multi"
        proc = run_lcore(
            "-f", spec, "-H", target.url, "--headless", "--no-web", "-u", "2", "-r", "10", "-t", "2s",
            "--processes", "2", "--csv", str(prefix), "--master-bind-port", str(free_port()),
        )  # fmt: skip
        assert proc.wait(60) == 0, proc.output[-3000:]
        rows = read_stats_csv(prefix)
        assert int(rows["/multi/a"]["Request Count"]) > 0 and int(rows["/multi/b"]["Request Count"]) > 0
    served = target.counts()
    assert served[("GET", "/multi/a")] + served[("GET", "/multi/b")] > 0


def test_a_headless_run_goes_on_when_the_web_port_is_taken(tmp_path, target, run_lcore) -> None:
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        locustfile = write(tmp_path, ITERATIONS)
        proc = run_lcore(
            "-f", str(locustfile), "-H", target.url, "--headless", "-u", "1", "-r", "10", "-i", "20",
            "--web-host", "127.0.0.1", "--web-port", str(port), "--master-bind-port", str(free_port()),
        )  # fmt: skip
        assert proc.wait(60) == 0, proc.output[-3000:]
        assert "The status page and /metrics are off for this headless run" in proc.output
        # with the page asked for (not headless), a taken port is an error
        proc = run_lcore(
            "-f", str(locustfile), "-H", target.url, "--web-host", "127.0.0.1", "--web-port", str(port),
            "--master-bind-port", str(free_port()),
        )  # fmt: skip
        assert proc.wait(60) == 1 and "Could not start the web server" in proc.output
    finally:
        busy.close()
