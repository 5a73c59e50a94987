"""A worker on another "host": a network namespace of the test's own, joined by a veth pair."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import wait_until
from test_engine import BASIC, free_port, read_stats_csv

from lcore.target import Target

pytestmark = pytest.mark.integration


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def veth_namespace(subnet: int | None = None) -> Iterator[tuple[str, str, str]]:
    """A namespace joined to this one by a veth pair: (namespace, host-side address, host-side
    interface). Its default route goes through the host, so it reaches every host address."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("network namespace test needs root and iproute2 under CI")
        pytest.skip("needs root and iproute2")
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"lcore-{tag}", f"lc{tag}a", f"lc{tag}b"
    if subnet is None:
        subnet = 10 + int(tag[:2], 16) % 200
    host_ip, ns_ip = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    try:
        _ip("netns", "add", ns)
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/24", "dev", ns_if)
        _ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        _ip("netns", "exec", ns, "ip", "route", "add", "default", "via", host_ip)
    except subprocess.CalledProcessError as e:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(
            f"cannot create a network namespace here: {e.stderr.decode(errors='replace').strip()}"
        )
    try:
        yield ns, host_ip, host_if
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


@pytest.fixture
def namespace():
    with veth_namespace() as (ns, host_ip, _):
        yield ns, host_ip


def test_worker_in_a_namespace_joins_over_veth(tmp_path, namespace, run_lcore) -> None:
    ns, host_ip = namespace
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    prefix = tmp_path / "ns"
    with Target(host=host_ip) as target:
        master = run_lcore(
            "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1", "-u", "4", "-r", "10",
            "-t", "3s", "--csv", str(prefix), "--master-bind-host", host_ip, "--master-bind-port", str(port), "--no-web",
        )  # fmt: skip
        worker = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "lcore.launcher.main", "-f", str(lf), "--worker",
             "--master-host", host_ip, "--master-port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
        try:
            assert master.wait(60) == 0, master.output
            out, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0, out
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        rows = read_stats_csv(prefix)
        assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


# every worker process requests a path of its own, so the target's counts say what each did
PER_PROCESS = """
import os
from locust import HttpUser, task, constant

class Steady(HttpUser):
    wait_time = constant(0.05)

    @task
    def own_path(self):
        self.client.get(f"/w/{os.getpid()}")
"""


def _box(ns: str, lf: Path, host_ip: str, port: int, cwd: Path) -> subprocess.Popen[bytes]:
    """``lcore --worker --processes 2`` on the "machine" ``ns``."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "lcore.launcher.main", "-f", str(lf), "--worker",
         "--processes", "2", "--master-host", host_ip, "--master-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
    )  # fmt: skip


def _worker_pids(box: subprocess.Popen[bytes]) -> list[int]:
    launcher = psutil.Process(box.pid)
    children = wait_until(lambda: len(launcher.children()) == 2 and launcher.children(), timeout=30)
    return sorted(c.pid for c in children)


def test_kill_freeze_and_a_cut_link_across_two_boxes(tmp_path: Path, run_lcore: Any) -> None:
    """Two boxes x --worker --processes 2 against a master here: SIGKILL one worker process,
    SIGSTOP another for 6 s, take one box's link down for 5 s. Nothing is counted twice, every
    process but the killed one is exact against the target (what it served, the requests that
    succeeded), and the summary bounds what the killed one took with it."""
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(PER_PROCESS))
    port = free_port()
    base = 10 + uuid.uuid4().int % 190
    prefix = tmp_path / "faults"
    with (
        veth_namespace(base) as (ns_a, ip_a, link_a),
        veth_namespace(base + 1) as (ns_b, ip_b, _),
        Target(host="0.0.0.0") as target,
    ):
        url = f"http://{ip_a}:{target.port}"  # box B reaches it through its default route
        master = run_lcore(
            "-f", str(lf), "-H", url, "--master", "--headless", "--expect-workers", "4", "-u", "8", "-r", "100",
            "-t", "24s", "--csv", str(prefix), "--master-bind-host", "0.0.0.0", "--master-bind-port", str(port),
            "--no-web", "--threshold", "fail_ratio<100%", "--json-file", str(tmp_path / "run.json"),
            "--exit-code-on-error", "0",
        )  # fmt: skip
        boxes = [_box(ns_a, lf, ip_a, port, tmp_path), _box(ns_b, lf, ip_b, port, tmp_path)]
        try:
            killed, cut = _worker_pids(boxes[0])
            frozen, _steady = _worker_pids(boxes[1])
            master.wait_for_output("Ramping to 8 users", timeout=40)

            def served(pid: int) -> int:
                return target.counts().get(("GET", f"/w/{pid}"), 0)

            # every process is running users and has reported at least once
            wait_until(
                lambda: all(served(pid) > 10 for pid in (killed, cut, frozen, _steady)), timeout=20
            )
            time.sleep(1.5)
            os.kill(killed, signal.SIGKILL)
            os.kill(frozen, signal.SIGSTOP)
            try:
                time.sleep(1)
                _ip("link", "set", link_a, "down")
                try:
                    time.sleep(5)
                finally:
                    _ip("link", "set", link_a, "up")
            finally:
                os.kill(frozen, signal.SIGCONT)  # 6 s after SIGSTOP
            assert master.wait(60) == 0, master.output
            for box in boxes:
                out, _ = box.communicate(timeout=30)
                assert box.returncode == 0, out.decode(errors="replace")
        finally:
            for box in boxes:
                if box.poll() is None:
                    box.kill()
                    box.wait()
        out = master.output
        counts = {
            path: n for (method, path), n in target.counts().items() if path.startswith("/w/")
        }
    rows = read_stats_csv(prefix)
    # what the target served, as counted: a request that failed never reached it (with the
    # link down, a new connection finds no route to the host; an open one waits it out)
    counted = {
        name: int(row["Request Count"]) - int(row["Failure Count"])
        for name, row in rows.items()
        if name.startswith("/w/")
    }
    with open(f"{prefix}_failures.csv", newline="") as f:
        errors = [row["Error"] for row in csv.DictReader(f)]
    assert all(re.search(r"No route to host|Network is unreachable", e) for e in errors), errors
    # the killed process was restarted on its box: five processes in all
    assert len(counts) == 5 and set(counted) == set(counts), (counts, counted)
    dead = f"/w/{killed}"
    for path, n in counts.items():
        if path != dead:
            assert counted[path] == n, (path, counted[path], n, out[-3000:])
    missing = counts[dead] - counted[dead]
    assert missing >= 0  # never counted twice
    line = next((x for x in out.splitlines() if "worker(s) lost during the test" in x), "")
    match = re.search(r"(\d+) worker\(s\) lost during the test: up to (\d+) requests", line)
    assert match, out[-3000:]
    bound = int(match.group(2))
    assert missing <= bound, (missing, line)
    # the --json document holds the same bound when it is an object (with --threshold)
    document = json.loads((tmp_path / "run.json").read_text())
    assert document["unreported"]["requests_at_most"] == bound
    # the bound is the dead worker's last rate over the seconds it was silent before it was
    # declared lost: the heartbeat timeout (3 s) and at most a heartbeat and a stats interval
    silent = [float(s) for s in re.findall(r"req/s x ([\d.]+) s silent", line)]
    assert silent and all(2.5 <= s <= 6.5 for s in silent), line
