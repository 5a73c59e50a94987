"""Worker logs reach the master: the forwarder's rate limit and loop guard in memory, then real
processes (a locustfile that logs on its workers; a worker that floods)."""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from conftest import wait_until

from lcore.log import LogBuffer, LogCapture, LogForwarder, not_forwarded

WORKER_ID = r"[\w.-]+_\d+_[0-9a-f]{8}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def forwarder_logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    return logger


# -- in memory -------------------------------------------------------------------------------


def test_forwarder_sends_warnings_up_to_the_rate_and_reports_what_it_dropped() -> None:
    clock = FakeClock()
    sent: list[tuple[str, str, str, int, str]] = []
    handler = LogForwarder(lambda *line: sent.append(line), rate=2.0, burst=3, clock=clock)
    logger = forwarder_logger(handler, "test.forward.rate")
    logger.info("not forwarded: below WARNING")
    for i in range(10):
        logger.warning("line %d", i)
    assert [s[2] for s in sent] == ["line 0", "line 1", "line 2"]
    assert handler.dropped == 7
    clock.now += 0.5  # one token back: the next line carries the count of the dropped ones
    logger.error("after the pause")
    assert sent[-1] == ("ERROR", "test.forward.rate", "after the pause", 7, "")
    for _ in range(5):
        logger.warning("again")
    clock.now += 0.5
    handler.flush_dropped()  # nothing else to send: the count goes alone
    assert sent[-1] == ("WARNING", "", "", 5, "")
    assert handler.dropped == 0 and handler.dropped_total == 12
    handler.flush_dropped()
    assert sent[-1] == ("WARNING", "", "", 5, "")  # nothing new, nothing sent


def test_forwarder_never_forwards_its_own_send_failures() -> None:
    calls = 0

    def send(*line: Any) -> None:
        nonlocal calls
        calls += 1
        logger.warning("send failed")  # what a send's error handling would log
        raise OSError("socket closed")

    handler = LogForwarder(send, rate=1000.0, burst=1000)
    logger = forwarder_logger(handler, "test.forward.loop")
    logger.warning("one")
    logger.warning("two")
    assert calls == 2  # one send per line, no recursion
    assert handler.failed == 2 and handler.dropped == 2


def test_forwarder_sends_tracebacks_apart_and_cut_to_size() -> None:
    sent: list[tuple[str, str, str, int, str]] = []
    logger = forwarder_logger(LogForwarder(lambda *line: sent.append(line)), "test.forward.tb")
    try:
        raise ValueError("x" * 10_000)
    except ValueError:
        logger.exception("task failed %s", "y" * 5000)
    level, _, message, _, traceback = sent[0]
    assert level == "ERROR" and message.startswith("task failed yyy") and len(message) == 4000
    assert traceback.startswith("Traceback (most recent call last)") and len(traceback) == 4000


def test_buffer_is_bounded_and_numbered() -> None:
    buffer = LogBuffer(limit=5)
    capture = LogCapture(buffer)
    logger = forwarder_logger(capture, "test.capture")
    for i in range(8):
        logger.info("master %d", i)
    logger.warning("forwarded", extra={"lcore_log_source": "w1"})  # added by the master itself
    assert [e.message for e in buffer.since()] == [f"master {i}" for i in range(3, 8)]
    assert buffer.last_seq == 8 and [e.seq for e in buffer.since(6)] == [7, 8]
    assert buffer.since()[0].line().endswith("master/INFO/test.capture: master 3")


# -- real processes --------------------------------------------------------------------------


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


def start(run_lcore: Any, tmp_path: Path, source: str, *args: str) -> tuple[Any, str]:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(source))
    web_port = free_port()
    proc = run_lcore(
        "-f", str(lf), "--headless", "--web-host", "127.0.0.1", "--web-port", str(web_port),
        "--master-bind-port", str(free_port()), *args,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{web_port}/"


LOGGING_LOCUSTFILE = """
import logging
from locust import HttpUser, task, constant

log = logging.getLogger("checkout")
said = False


class Shopper(HttpUser):
    wait_time = constant(0.2)

    @task
    def buy(self):
        global said
        self.client.get("/")
        if not said:
            said = True
            log.warning("the cart of %s is slow", "alice")
            logging.error("root logger: payment declined")


class Broken(HttpUser):
    wait_time = constant(1)

    def __init__(self, environment):
        raise RuntimeError("no such account")

    @task
    def nothing(self):
        pass
"""


def test_worker_warnings_reach_the_master_log_and_logs_endpoint(tmp_path, target, run_lcore) -> None:
    proc, base = start(
        run_lcore, tmp_path, LOGGING_LOCUSTFILE, "-H", target.url, "-u", "2", "-r", "2",
        "--processes", "1",
    )  # fmt: skip

    def lines() -> dict[str, Any]:
        doc = get_json(base + "logs") or {"entries": []}
        return {e["message"].split("\n")[0]: e for e in doc["entries"]}

    seen = wait_until(
        lambda: (found := lines()).get("the cart of alice is slow")
        and found.get("root logger: payment declined")
        and found.get("Could not start a Broken user")
        and found,
        timeout=60,
    )
    workers = [w["id"] for w in get_json(base + "api/workers")["workers"]]
    assert len(workers) == 1
    for message, name, level in (
        ("the cart of alice is slow", "checkout", "WARNING"),  # the locustfile's logger
        ("root logger: payment declined", "root", "ERROR"),  # the root logger
        ("Could not start a Broken user", "lcore.user_pool", "ERROR"),  # lcore's own
    ):
        entry = seen[message]
        assert (entry["source"], entry["name"], entry["level"]) == (workers[0], name, level)
    assert "RuntimeError: no such account" in seen["Could not start a Broken user"]["message"]
    # Locust's shape of /logs: worker lines under their worker, the master's own lines too
    doc = get_json(base + "logs")
    assert any("the cart of alice is slow" in line for line in doc["workers"][workers[0]])
    assert any("connected" in line for line in doc["master"])
    # the master's own log shows the line tagged with the worker
    out = proc.wait_for_output("the cart of alice is slow")
    assert re.search(rf"/WARNING/lcore\.workers: \[{WORKER_ID}\] checkout: the cart of alice is slow", out)
    assert re.search(rf"/ERROR/lcore\.workers: \[{WORKER_ID}\] root: root logger: payment declined", out)
    # a local worker shares the master's terminal: each line shows once, from the master
    assert out.count("the cart of alice is slow") == 1
    assert "worker-0/WARNING/checkout" not in out
    proc.proc.send_signal(signal.SIGTERM)
    proc.wait(60)


FLOOD_LOCUSTFILE = """
import logging
import time
from locust import User, task, constant

log = logging.getLogger("chatty")
flooded = False


class Chatty(User):
    wait_time = constant(0.5)

    @task
    def flood(self):
        global flooded
        if not flooded:
            flooded = True
            for i in range(5000):
                log.warning("flood %d", i)
"""


def test_a_chatty_worker_cannot_flood_the_master(tmp_path, run_lcore) -> None:
    started = time.monotonic()
    proc, base = start(
        run_lcore, tmp_path, FLOOD_LOCUSTFILE, "-u", "1", "-r", "1", "--processes", "1"
    )

    def counts() -> tuple[int, int]:
        doc = get_json(base + "logs") or {"entries": [], "dropped": {}}
        forwarded = sum(1 for e in doc["entries"] if e["message"].startswith("flood "))
        return forwarded, sum(doc["dropped"].values())

    # every line is either forwarded or counted as dropped, and the count reaches the master
    wait_until(lambda: sum(counts()) >= 5000, timeout=60)
    forwarded, dropped = counts()
    elapsed = time.monotonic() - started
    # the worker's bucket: 50 at once, then 10 a second
    assert 0 < forwarded <= 50 + 10 * elapsed, (forwarded, elapsed)
    assert dropped >= 5000 - forwarded
    proc.proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    out = proc.output
    # the master's log has what was forwarded; the (local) worker's own log the rest
    assert len(re.findall(rf"lcore\.workers: \[{WORKER_ID}\] chatty: flood \d+", out)) == forwarded
    assert len(re.findall(r"chatty: flood \d+", out)) == 5000
    assert re.search(rf"\[{WORKER_ID}\] \d+ log line\(s\) dropped by the worker's rate limit", out)


def test_forwarder_marks_what_reached_the_master_and_keeps_the_rest() -> None:
    results = iter([True, False])
    sent: list[tuple[str, str, str, int]] = []

    def send(*line: Any) -> bool:
        sent.append(line)
        return next(results)

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = LogForwarder(send, rate=1000.0, burst=1000)
    logger = forwarder_logger(handler, "test.forward.mark")
    local = Keep()
    local.addFilter(not_forwarded)
    logger.addHandler(local)
    logger.warning("reached the master")
    logger.warning("not connected yet")
    assert [r.getMessage() for r in records] == ["not connected yet"]


def test_master_keeps_worker_lines_bounded_and_tagged(caplog) -> None:
    from lcore import protocol as p
    from lcore.env import Environment
    from lcore.master import MasterRuntime, WorkerNode
    from lcore.users import User

    class Quiet(User):
        pass

    runtime = MasterRuntime(Environment(user_classes=[Quiet]), endpoints=[], digest="d")
    runtime.workers["w1"] = WorkerNode("w1", "box", 1, 1, 0)
    caplog.set_level(logging.INFO, logger="lcore.workers")
    runtime._handle("w1", p.Log("NOTALEVEL", "x" * 100_000, "n" * 1000, 0))
    runtime._handle("w1", p.Log("WARNING", "", "", 42))  # only the count of dropped lines
    runtime._handle("ghost", p.Log("ERROR", "from nobody", "", 0))  # not a worker: ignored
    first, dropped = runtime.logs.since()
    assert (first.source, first.level, len(first.message), len(first.name)) == ("w1", "WARNING", 4000, 200)
    assert dropped.message == "42 log line(s) dropped by the worker's rate limit"
    assert runtime.logs.dropped == {"w1": 42}
    assert [r.getMessage()[:5] for r in caplog.records] == ["[w1] ", "[w1] "]
    assert all(r.lcore_log_source == "w1" for r in caplog.records)


REMOTE_LOCUSTFILE = """
import logging
from locust import User, task, constant

said = False


class Remote(User):
    wait_time = constant(0.2)

    @task
    def t(self):
        global said
        if not said:
            said = True
            logging.getLogger("remote").warning("hello from the remote box")
"""


def test_a_remote_worker_forwards_and_keeps_its_own_lines(tmp_path, run_lcore) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(REMOTE_LOCUSTFILE))
    port, web_port = free_port(), free_port()
    master = run_lcore(
        "-f", str(lf), "--master", "--headless", "--expect-workers", "1", "-u", "1", "-r", "1",
        "-t", "30s", "--master-bind-port", str(port), "--web-host", "127.0.0.1", "--web-port",
        str(web_port),
    )  # fmt: skip
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    master.wait_for_output("hello from the remote box", timeout=60)
    # on its own box, the remote worker's log keeps the line too
    worker.wait_for_output("/WARNING/remote: hello from the remote box", timeout=30)
    entries = get_json(f"http://127.0.0.1:{web_port}/logs")["entries"]
    assert [e["name"] for e in entries if e["message"] == "hello from the remote box"] == ["remote"]
    master.proc.send_signal(signal.SIGTERM)
    master.wait(60)
    worker.wait(30)
