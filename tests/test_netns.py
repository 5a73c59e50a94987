"""A worker on another "host": a network namespace of the test's own, joined by a veth pair."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import pytest
from test_engine import BASIC, free_port, read_stats_csv

from lcore.target import Target

pytestmark = pytest.mark.integration


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def namespace():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("network namespace test needs root and iproute2 under CI")
        pytest.skip("needs root and iproute2")
    tag = uuid.uuid4().hex[:6]
    ns, host_if, ns_if = f"lcore-{tag}", f"lc{tag}a", f"lc{tag}b"
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
    except subprocess.CalledProcessError as e:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"cannot create a network namespace here: {e.stderr.decode(errors='replace').strip()}")
    try:
        yield ns, host_ip
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


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
