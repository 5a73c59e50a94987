"""--log-format json: one JSON object a line, in memory and from a real multi-process run, where
lines a worker forwarded keep its worker id on the master and tracebacks stay in a field."""

from __future__ import annotations

import json
import logging
import textwrap
from typing import Any

from lcore import protocol as p
from lcore.env import Environment
from lcore.log import LOG_CONTEXT, JsonFormatter, LogContext
from lcore.master import MasterRuntime, WorkerNode
from lcore.users import User

KEYS = {"time", "level", "role", "worker_id", "host", "logger", "message", "run_id"}


def record(message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("shop.cart", logging.ERROR, __file__, 1, message, (), exc_info)


def test_a_record_with_a_traceback_is_one_line_with_the_traceback_in_a_field() -> None:
    context = LogContext(role="worker", worker_id="box_12_ab", run_id="20261201-101010-abcdef")
    try:
        raise ValueError("card declined\nsecond line")
    except ValueError as e:
        line = JsonFormatter(context).format(record("checkout failed\nfor alice", e))
    assert "\n" not in line
    doc = json.loads(line)
    assert KEYS <= set(doc)
    assert (doc["level"], doc["role"], doc["worker_id"], doc["logger"]) == (
        "ERROR", "worker", "box_12_ab", "shop.cart",
    )  # fmt: skip
    assert doc["message"] == "checkout failed\nfor alice"
    assert doc["run_id"] == "20261201-101010-abcdef"
    assert doc["traceback"].startswith("Traceback (most recent call last)")
    assert doc["traceback"].rstrip().endswith("ValueError: card declined\nsecond line")
    assert doc["time"].endswith("Z") and doc["time"][10] == "T"


class Quiet(User):
    pass


def test_a_forwarded_line_keeps_its_worker_id_logger_time_and_traceback(caplog) -> None:
    runtime = MasterRuntime(Environment(user_classes=[Quiet]), endpoints=[], digest="d")
    runtime.workers["w1"] = WorkerNode("w1", "box-7", 1, 1, 0)
    caplog.set_level(logging.INFO, logger="lcore.workers")
    runtime._handle("w1", p.Log("ERROR", "payment failed", "checkout", 0, "Traceback ...\nKeyError: 1", 1e9))
    (forwarded,) = caplog.records
    doc = json.loads(JsonFormatter(LOG_CONTEXT).format(forwarded))
    assert (doc["role"], doc["worker_id"], doc["host"], doc["logger"]) == (
        "worker", "w1", "box-7", "checkout",
    )  # fmt: skip
    assert doc["message"] == "payment failed"  # not the master's "[w1] checkout: ..." prefix
    assert doc["traceback"] == "Traceback ...\nKeyError: 1"
    assert doc["time"] == "2001-09-09T01:46:40.000Z"  # when the worker logged it
    assert doc["run_id"] == runtime.run_uid
    # the text format and /logs still show the whole line, traceback included
    assert forwarded.getMessage() == "[w1] checkout: payment failed\nTraceback ...\nKeyError: 1"
    assert runtime.logs.since()[0].message == "payment failed\nTraceback ...\nKeyError: 1"


LOCUSTFILE = """
import logging
from locust import HttpUser, task, constant

log = logging.getLogger("checkout")
said = False


class Shopper(HttpUser):
    wait_time = constant(0.1)

    @task
    def buy(self):
        global said
        self.client.get("/")
        if not said:
            said = True
            log.info("a line only the worker prints")
            try:
                {}["cart"]
            except KeyError:
                log.exception("the cart of %s\\nis gone", "alice")
"""


def test_every_line_of_a_real_run_parses_and_carries_role_worker_and_run_id(
    tmp_path, target, run_lcore
) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(LOCUSTFILE))
    logfile = tmp_path / "lcore.log"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "--processes", "2", "-u", "2", "-r", "2",
        "-t", "3s", "--no-web", "--log-format", "json", "--logfile", str(logfile),
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output
    lines = logfile.read_text().splitlines()
    docs: list[dict[str, Any]] = [json.loads(line) for line in lines]  # each line parses alone
    assert docs and all(KEYS <= set(d) for d in docs)
    roles = {d["role"] for d in docs}
    assert {"master", "worker"} <= roles <= {"launcher", "master", "worker"}, roles
    run_ids = {d["run_id"] for d in docs if d["run_id"] is not None}
    assert len(run_ids) == 1, run_ids  # launcher, master and workers: one run
    # the workers' own lines (INFO stays on the worker) name the two workers
    own = {d["worker_id"] for d in docs if d["role"] == "worker" and d["logger"] == "checkout" and d["level"] == "INFO"}
    assert len(own) == 2 and None not in own
    # the forwarded errors, printed once by the master, keep each worker's id and traceback
    errors = [d for d in docs if d["logger"] == "checkout" and d["level"] == "ERROR"]
    assert {d["worker_id"] for d in errors} == own
    for d in errors:
        assert d["message"] == "the cart of alice\nis gone"
        assert d["traceback"].rstrip().endswith("KeyError: 'cart'")
    master = [d for d in docs if d["role"] == "master"]
    assert master and all(d["worker_id"] is None for d in master)


def test_the_run_id_goes_to_workers_and_a_new_test_gets_a_new_one() -> None:
    from lcore._version import PROTOCOL_VERSION, __version__

    runtime = MasterRuntime(
        Environment(user_classes=[Quiet]), endpoints=[], digest="d", run_uid="20261201-090000-aaaaaa"
    )
    sent: list[p.Message] = []
    runtime._send = lambda node_id, message: sent.append(message)  # type: ignore[method-assign]
    try:
        assert LOG_CONTEXT.run_id == "20261201-090000-aaaaaa"
        runtime._handle("w1", p.Hello(PROTOCOL_VERSION, __version__, "box", 1, 1, "d"))
        welcome = next(m for m in sent if isinstance(m, p.Welcome))
        # what a remote worker gets on the wire (its JSON lines carry it from then on)
        decoded, _ = p.decode(p.encode(welcome, "master"))
        assert decoded.run_uid == "20261201-090000-aaaaaa"
        runtime._begin_run()  # the first test keeps the id the run started with
        assert runtime.run_uid == "20261201-090000-aaaaaa"
        runtime._send_targets({"w1"}, spread=0.0)
        assert next(m for m in sent if isinstance(m, p.Spawn)).run_uid == "20261201-090000-aaaaaa"
        runtime._begin_run()  # a second test from the page: a new run
        assert LOG_CONTEXT.run_id == runtime.run_uid != "20261201-090000-aaaaaa"
    finally:
        runtime.calls.close()
        runtime.handler_calls.close(timeout=0)
