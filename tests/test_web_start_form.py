"""The status page's start form against a real master and worker, through HTTP as Locust's
/swarm is called: run time, the locustfile's options sent to the workers, --class-picker."""

from __future__ import annotations

import json
import signal
import socket
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from conftest import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def post(url: str, fields: list[tuple[str, str]]) -> tuple[int, Any]:
    body = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def start_master(run_lcore: Any, tmp_path: Path, source: str, *args: str) -> tuple[Any, str]:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(source))
    web_port = free_port()
    proc = run_lcore(
        "-f", str(lf), "--processes", "1", "--web-host", "127.0.0.1", "--web-port", str(web_port),
        "--master-bind-port", str(free_port()), *args,
    )  # fmt: skip
    base = f"http://127.0.0.1:{web_port}/"
    wait_until(lambda: (get_json(base + "healthz") or {}).get("workers") == 1, timeout=60)
    return proc, base


def state(base: str) -> str:
    return (get_json(base + "healthz") or {}).get("state", "")


def stop(proc: Any) -> None:
    proc.proc.send_signal(signal.SIGTERM)
    proc.wait(60)


OPTIONS_LOCUSTFILE = """
import logging
from locust import HttpUser, task, constant, events


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--greeting", default="hi", help="What the users say")
    parser.add_argument("--api-key", default="default-key", is_secret=True, help="The API key")
    parser.add_argument("--internal", default="x", include_in_web_ui=False)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--loud", action="store_true")


@events.test_start.add_listener
def _(environment, **kwargs):
    logging.warning("test_start sees greeting=%s", environment.parsed_options.greeting)


class Greeter(HttpUser):
    wait_time = constant(0.1)

    def on_start(self):
        o = self.environment.parsed_options
        self.client.get(f"/start/{o.greeting}/{o.api_key}/{o.repeat}/{o.loud}", name="start")

    @task
    def hello(self):
        self.client.get("/hello")
"""


def test_run_time_and_custom_options_from_the_form_reach_the_workers(
    tmp_path, target, run_lcore
) -> None:
    proc, base = start_master(run_lcore, tmp_path, OPTIONS_LOCUSTFILE, "-H", target.url)
    form = get_json(base + "api/start-form")
    extra = form["extra_options"]
    assert set(extra) == {"greeting", "api_key", "repeat", "loud"}  # not --internal
    assert extra["greeting"]["default_value"] == "hi"
    assert extra["greeting"]["help_text"] == "What the users say"
    assert extra["api_key"]["is_secret"] and extra["api_key"]["default_value"] is None
    assert extra["loud"]["is_bool"] and extra["repeat"]["default_value"] == 1
    with urllib.request.urlopen(base + "api/start-form") as r:
        assert b"default-key" not in r.read()  # a secret never leaves the master

    # Locust's /swarm form fields
    fields = [
        ("user_count", "2"), ("spawn_rate", "10"), ("host", target.url), ("run_time", "3s"),
        ("greeting", "hello"), ("api_key", "topsecret"), ("repeat", "3"), ("loud", "true"),
    ]  # fmt: skip
    started = time.monotonic()
    status, answer = post(base + "swarm", fields)
    assert status == 200 and answer["success"] and answer["run_time"] == 3, answer
    # every user saw the new values from its very start, on the worker
    wait_until(lambda: target.counts().get(("GET", "/start/hello/topsecret/3/True")) == 2, 30)
    assert not [k for k in target.counts() if k[1].startswith("/start/") and "hello" not in k[1]]
    # and the test stops by itself after the run time
    assert get_json(base + "api/stats")["stop_at"] is not None
    wait_until(lambda: state(base) == "stopped", timeout=30)
    assert 2.5 <= time.monotonic() - started < 20
    logs = get_json(base + "logs")["entries"]
    assert any(
        e["message"] == "test_start sees greeting=hello" and e["source"] != "master" for e in logs
    )
    form = get_json(base + "api/start-form")
    assert form["extra_options"]["greeting"]["default_value"] == "hello"
    assert form["extra_options"]["api_key"]["default_value"] is None
    # a bad run time or option changes nothing
    status, answer = post(base + "swarm", [("user_count", "1"), ("spawn_rate", "1"), ("run_time", "soon")])
    assert status == 400 and "run_time" in answer["message"]
    status, answer = post(
        base + "swarm", [("user_count", "1"), ("spawn_rate", "1"), ("repeat", "many"), ("greeting", "no")]
    )
    assert status == 400 and "--repeat" in answer["message"]
    assert get_json(base + "api/start-form")["extra_options"]["greeting"]["default_value"] == "hello"
    assert state(base) == "stopped"
    stop(proc)


PICKER_LOCUSTFILE = """
from locust import HttpUser, LoadTestShape, task, constant


class Alpha(HttpUser):
    wait_time = constant(0.1)

    @task
    def alpha(self):
        self.client.get("/alpha")


class Beta(HttpUser):
    wait_time = constant(0.1)

    @task
    def beta(self):
        self.client.get("/beta")


class OneUser(LoadTestShape):
    def tick(self):
        return (1, 1) if self.get_run_time() < 60 else None


class ThreeUsers(LoadTestShape):
    def tick(self):
        return (3, 10) if self.get_run_time() < 60 else None
"""


def test_class_picker_chooses_user_classes_and_shape(tmp_path, target, run_lcore) -> None:
    proc, base = start_master(
        run_lcore, tmp_path, PICKER_LOCUSTFILE, "-H", target.url, "--class-picker"
    )
    form = get_json(base + "api/start-form")
    assert form["class_picker"] is True
    assert form["available_user_classes"] == ["Alpha", "Beta"]
    assert form["available_shape_classes"] == ["Default", "OneUser", "ThreeUsers"]
    assert form["shape_class"] == "OneUser"  # the first shape, as Locust picks it

    def users() -> int:
        return get_json(base + "api/stats")["user_count"]

    # no shape, one class: only that class runs
    status, answer = post(
        base + "swarm",
        [("user_count", "4"), ("spawn_rate", "20"), ("user_classes", "Beta"), ("shape_class", "Default")],
    )
    assert status == 200 and answer["user_classes"] == ["Beta"], answer
    wait_until(lambda: users() == 4 and target.counts().get(("GET", "/beta"), 0) > 20, 30)
    assert ("GET", "/alpha") not in target.counts()
    assert get_json(base + "api/stats")["user_classes_count"] == {"Alpha": 0, "Beta": 4}
    assert post(base + "api/stop", [])[0] == 200
    wait_until(lambda: state(base) == "stopped", 30)
    beta = target.counts()[("GET", "/beta")]

    # a shape chosen on the page drives the next test, with the class picked
    status, answer = post(
        base + "swarm", [("user_classes", "Alpha"), ("shape_class", "ThreeUsers")]
    )
    assert status == 200 and "ThreeUsers" in answer["message"], answer
    wait_until(lambda: users() == 3 and target.counts().get(("GET", "/alpha"), 0) > 10, 30)
    assert target.counts()[("GET", "/beta")] == beta
    assert get_json(base + "api/start-form")["shape_class"] == "ThreeUsers"
    status, answer = post(base + "swarm", [("shape_class", "OneUser")])
    assert status == 409  # not while a shape runs
    status, answer = post(base + "swarm", [("user_classes", "Gamma"), ("user_count", "1"), ("spawn_rate", "1")])
    assert status == 400 and "Gamma" in answer["message"]
    assert post(base + "api/stop", [])[0] == 200
    wait_until(lambda: state(base) == "stopped", 30)
    stop(proc)
