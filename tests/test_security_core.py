"""What a master exposes and believes: no TCP port in a local run, no local paths in the Welcome,
and worker reports bounded by what the worker could have done (real processes, a fake worker)."""

from __future__ import annotations

import socket
import textwrap

import pytest
from test_engine import BASIC, free_port, read_stats_csv

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
