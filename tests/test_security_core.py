"""What a master exposes and believes: no TCP port in a local run, no local paths in the Welcome,
and worker reports bounded by what the worker could have done (real processes, a fake worker)."""

from __future__ import annotations

import csv
import logging
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
from lcore.stats import MergedStats, overflow_name
from lcore.stats_delta import RequestStats, StatsDelta

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


def absurd_delta(requests: int, end_offset: float = 0.0) -> list:
    """A well-formed delta (it passes from_wire) for one invented entry of ``requests``."""
    stats = RequestStats()
    stats.record("GET", "/invented", 5.0, 10, None)
    wire = stats.take_delta().to_wire()
    fields, buckets = wire[4], wire[6]
    fields[1] *= requests  # content length
    fields[2] *= requests  # count
    fields[3] *= requests  # sum of response times
    buckets[1] = requests
    wire[1] += end_offset
    wire[2] += end_offset
    return wire


def test_reports_beyond_what_a_worker_could_do_are_refused(tmp_path, target, run_lcore) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    prefix = tmp_path / "bounded"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "2",
        "-u", "4", "-r", "100", "-t", "4s", "--csv", str(prefix), "--master-bind-port", str(port), "--no-web",
        cwd=tmp_path,
    )  # fmt: skip
    master.wait_for_output("Waiting for workers", timeout=30)
    fake = FakeWorker(port, "liar")
    try:
        fake.send(p.Hello(PROTOCOL_VERSION, __version__, "liar", 1, 1, digest(str(lf))))
        assert fake.receive().accepted
        worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
        spawn = fake.receive_until(p.Spawn, timeout=30)
        asked = {str(k): int(v) for k, v in spawn.targets.items()}
        assert 1 <= sum(asked.values()) <= 2, asked  # half of the 4 users, maybe ramped in steps
        claimed = {name: 10**12 for name in asked}
        fake.send(p.SpawningComplete(claimed))
        fake.send(p.StatsReport(1, absurd_delta(1), claimed))  # users beyond what it was asked
        fake.send(p.StatsReport(2, absurd_delta(10**12), asked))  # requests beyond any rate
        fake.send(p.StatsReport(3, absurd_delta(1, end_offset=10 * 86400), asked))  # a clock days ahead
        master.wait_for_output("(3 so far)", timeout=15)
        fake.send(p.Goodbye("done"))
    finally:
        fake.close()
    assert master.wait(60) == 0, master.output[-3000:]
    assert worker.wait(30) == 0, worker.output[-3000:]
    out = master.output
    assert out.count("Refused a report from worker liar") == 4, out[-3000:]
    assert "Traceback" not in out
    rows = read_stats_csv(prefix)
    assert "/invented" not in rows
    # the real worker's figures are exact: every request the target served, and nothing else
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        users = [int(row["User Count"]) for row in csv.DictReader(f)]
    assert users and max(users) <= 4, users


def delta_of(*requests: tuple[str, str, bool]) -> StatsDelta:
    stats = RequestStats(now=1000.0)
    for method, name, failed in requests:
        stats.record(method, name, 5.0, 10, RuntimeError("boom") if failed else None)
    return stats.take_delta(now=1001.0)


def test_stats_entries_past_the_cap_fold_into_one_row_per_method(caplog) -> None:
    merged = MergedStats(clock=lambda: 1001.0, max_entries=3)
    merged.merge("w", delta_of(("GET", "/a", False), ("GET", "/b", False), ("POST", "/c", False)), now=1001.0)
    with caplog.at_level(logging.WARNING, logger="lcore.stats"):
        for i in range(50):
            merged.merge("w", delta_of(("GET", f"/item/{i}", i == 0), ("POST", f"/form/{i}", False), ("GET", "/a", False)), now=1001.0)
    other = overflow_name(3)
    assert set(merged.entries) == {("/a", "GET"), ("/b", "GET"), ("/c", "POST"), (other, "GET"), (other, "POST")}
    assert merged.entries[(other, "GET")].num_requests == 50
    assert merged.entries[(other, "GET")].num_failures == 1
    assert merged.entries[("/a", "GET")].num_requests == 51  # a name kept before the cap keeps counting
    assert merged.total.num_requests == 3 + 150  # nothing lost
    assert [key[1] for key in merged.errors] == [other]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "name=" in warnings[0] and "--max-stats-entries" in warnings[0], warnings


MANY_NAMES = """
from locust import HttpUser, task, constant

class Ids(HttpUser):
    wait_time = constant(0.01)

    @task
    def item(self):
        self.n = getattr(self, "n", 0) + 1
        self.client.get(f"/?id={self.n}")
"""


def test_max_stats_entries_caps_a_real_run(tmp_path, target, run_lcore) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(MANY_NAMES))
    prefix = tmp_path / "capped"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "10", "-t", "2s",
        "--max-stats-entries", "5", "--csv", str(prefix), "--no-web",
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-3000:]
    assert proc.output.count("More than 5 distinct request names") == 1, proc.output[-3000:]
    rows = read_stats_csv(prefix)
    assert len(rows) == 5 + 1 + 1  # the kept names, one "Other" row for GET, Aggregated
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 5
