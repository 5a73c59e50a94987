"""locust.contrib.socketio under lcore: Locust's socketio example against a real Socket.IO
server (python-socketio on aiohttp, tests/socketio_server.py) that counts every event it
handled, so what lcore recorded is checked against what the server saw."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from contrib_servers import need_module
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/socketio/socketio_ex.py, with the server's address. With python-socketio 5
# its chat_message handler is called with the data alone, so it raises TypeError and the first
# task waits for ever: under Locust too. Each user records one round of it, no more.
EXAMPLE = """
from locust import HttpUser, task
from locust.contrib.socketio import SocketIOUser

from threading import Event

import gevent
from socketio import Client


class MySIOHttpUser(SocketIOUser, HttpUser):
    options = {{
        # "logger": True,
        # "engineio_logger": True,
    }}
    event: Event

    def on_start(self) -> None:
        self.sio.connect("ws://localhost:{port}", wait_timeout=10)
        self.sio_greenlet = gevent.spawn(self.sio.wait)

    @task
    def my_task(self):
        self.event = Event()
        self.sio.call("join_room", {{"room": "room1"}})
        self.sio.on("chat_message", self.on_chat_message)
        Client.call(self.sio, "send_message", {{"room": "room1", "message": "foo"}})
        self.sio.emit("send_message", {{"room": "room1", "message": "bar"}})
        self.event.wait()
        self.sio.call("leave_room", {{"room": "room1"}})
        self.client.get("/")

    def on_chat_message(self, {handler_args}) -> None:
        if event == "chat_message" and data.startswith("bar"):
            self.event.set()
        self.sio.on_message(event, data)

    def on_stop(self) -> None:
        self.sio.disconnect()
"""
AS_IN_LOCUST = EXAMPLE.replace("{handler_args}", "event: str, data: str")
# the same with a handler python-socketio can call, so the task loops
WORKING = EXAMPLE.replace("{handler_args}", 'data: str, event: str = "chat_message"')


class SocketIOServer:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.log = open(tmp_path / "socketio-server.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("socketio_server.py")), str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._listening, timeout=15)

    def _listening(self) -> bool:
        assert self.proc.poll() is None, "the socketio server exited"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def counts(self) -> dict[str, int]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/counts", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture
def sio_server(tmp_path: Path) -> Iterator[SocketIOServer]:
    need_module("socketio")
    need_module("websocket")  # python-socketio's client needs it for the websocket transport
    server = SocketIOServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def read_counts(prefix: Path) -> dict[tuple[str, str], tuple[int, int]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {
            (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
            for r in csv.DictReader(f)
            if r["Name"] != "Aggregated"
        }


def run(tmp_path: Path, run_lcore, server: SocketIOServer, source: str, users: int):  # type: ignore[no-untyped-def]
    locustfile = write(tmp_path, source.format(port=server.port))
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", str(users), "-r", "10", "-t", "3s",
        "--processes", "2", "-H", f"http://127.0.0.1:{server.port}",
        "--master-bind-port", str(free_port()), "--no-web", "--csv", str(prefix),
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-4000:]
    rows = read_counts(prefix)
    assert all(failures == 0 for _, failures in rows.values()), rows
    # every user disconnected in on_stop, so the server has seen all it will see
    wait_until(lambda: server.counts().get("disconnect", 0) == users)
    return proc.output, {key: n for key, (n, _) in rows.items()}


def test_example_as_locust_runs_it(tmp_path, run_lcore, sio_server) -> None:
    out, rows = run(tmp_path, run_lcore, sio_server, AS_IN_LOCUST, users=2)
    # what Locust 2.47 records for the same file: call() emits, so it is a WSC and a WSE,
    # and socketio.Client.call on the instance still goes through the recorded emit
    room_joined = rows.pop(("WSR", "room_joined"))
    assert rows == {
        ("WS", "connect"): 2,
        ("WSC", "join_room"): 2,
        ("WSE", "join_room"): 2,
        ("WSE", "send_message"): 4,
    }
    assert 2 <= room_joined <= 3  # the second user's join reaches both users
    assert "missing 1 required positional argument: 'data'" in out
    assert sio_server.counts() == {"connect": 2, "join_room": 2, "send_message": 4, "disconnect": 2}


def test_working_example_records_what_the_server_saw(tmp_path, run_lcore, sio_server) -> None:
    _, rows = run(tmp_path, run_lcore, sio_server, WORKING, users=3)
    seen = sio_server.counts()
    assert rows[("WS", "connect")] == seen["connect"] == 3
    assert rows[("WSC", "join_room")] == rows[("WSE", "join_room")] == seen["join_room"] > 10
    assert rows[("WSC", "leave_room")] == seen["leave_room"]
    assert rows[("WSE", "send_message")] == seen["send_message"]
    assert rows[("GET", "/")] == seen["GET /"]
    # each round receives its own two chat messages, at least
    assert rows[("WSR", "chat_message")] >= rows[("GET", "/")]
