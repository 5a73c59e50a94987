"""What a master exposes and believes: no TCP port in a local run, no local paths in the Welcome,
and worker reports bounded by what the worker could have done (real processes, a fake worker)."""

from __future__ import annotations

import socket
import textwrap
import time
from pathlib import Path

import pytest
import zmq
from test_engine import BASIC, free_port, read_stats_csv

from lcore import protocol as p
from lcore._version import PROTOCOL_VERSION, __version__
from lcore.locustfile import digest

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_local_run_opens_no_worker_port(tmp_path, target, run_lcore) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    prefix = tmp_path / "local"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "10", "-t", "3s",
        "--master-bind-port", str(port), "--csv", str(prefix), "--no-web",
    )  # fmt: skip
    proc.wait_for_output("Ramping to 2 users", timeout=30)
    assert not listening(port)  # the local workers ran over ipc: nothing to reach from outside
    assert proc.wait(60) == 0, proc.output[-3000:]
    assert "without CURVE keys" not in proc.output
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


class FakeWorker:
    """A peer that speaks the worker protocol over TCP with pyzmq, saying whatever it likes."""

    def __init__(self, port: int, name: str) -> None:
        self.ctx = zmq.Context()
        self.name = name
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.setsockopt(zmq.IDENTITY, name.encode())
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send(self, message: p.Message) -> None:
        self.sock.send(p.encode(message, self.name))

    def receive(self, timeout_ms: int = 15000) -> p.Message:
        assert self.sock.poll(timeout_ms), "the master did not answer"
        message, _ = p.decode(self.sock.recv())
        return message

    def receive_until(self, kind: type, timeout: float = 20.0) -> p.Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(int(max(1, deadline - time.monotonic()) * 1000))
            if isinstance(message, kind):
                return message
        raise AssertionError(f"no {kind.__name__} within {timeout} s")

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def test_the_welcome_carries_no_local_paths(tmp_path, target, run_lcore) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1",
        "-u", "1", "-r", "10", "-t", "2s", "--master-bind-port", str(port), "--no-web", cwd=tmp_path,
    )  # fmt: skip
    master.wait_for_output("Waiting for workers", timeout=30)
    fake = FakeWorker(port, "curious")
    try:
        fake.send(p.Hello(PROTOCOL_VERSION, __version__, "curious", 1, 1, digest(str(lf))))
        welcome = fake.receive()
        assert isinstance(welcome, p.Welcome) and welcome.accepted, welcome
        sent = repr(welcome)
        assert str(tmp_path) not in sent and str(Path.home()) not in sent, sent
        fake.send(p.Goodbye("done"))
    finally:
        fake.close()
    master.kill()
