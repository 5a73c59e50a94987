"""CURVE between master and workers: keys, accepted and refused workers (real processes)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import lcore_command
from test_engine import BASIC, free_port, read_stats_csv

pytestmark = pytest.mark.integration


def keys(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    result = subprocess.run(lcore_command("keys", "generate", str(directory)), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return directory


def worker_copy(keys_dir: Path, dest: Path, pair: str = "worker") -> Path:
    dest.mkdir()
    shutil.copy(keys_dir / "master.key", dest / "master.key")
    shutil.copy(keys_dir / f"{pair}.key", dest / f"{pair}.key")
    shutil.copy(keys_dir / f"{pair}.key_secret", dest / f"{pair}.key_secret")
    return dest


def test_keys_generate_and_add_worker(tmp_path) -> None:
    d = keys(tmp_path, "k")
    assert {p.name for p in d.iterdir()} >= {"master.key", "master.key_secret", "worker.key", "worker.key_secret", "authorized"}
    result = subprocess.run(lcore_command("keys", "add-worker", str(d), "box2"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert (d / "authorized" / "box2.key").exists()
    again = subprocess.run(lcore_command("keys", "generate", str(d)), capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "already holds" in again.stderr


def test_encrypted_remote_and_local_workers_run_a_test(tmp_path, target, run_lcore) -> None:
    d = keys(tmp_path, "k")
    remote_dir = worker_copy(d, tmp_path / "remote")
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    prefix = tmp_path / "enc"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--processes", "1", "--expect-workers", "2",
        "-u", "4", "-r", "10", "-t", "3s", "--csv", str(prefix), "--curve-keys", str(d),
        "--master-bind-port", str(port), "--no-web",
    )  # fmt: skip
    # --master --processes 1 runs one local worker; the remote one makes two
    worker = run_lcore(
        "-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "--curve-keys", str(remote_dir)
    )
    assert master.wait(60) == 0, master.output
    assert worker.wait(20) == 0, worker.output
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


def test_unknown_key_and_no_key_are_refused(tmp_path, target, run_lcore) -> None:
    d = keys(tmp_path, "k")
    stranger = worker_copy(keys(tmp_path, "other"), tmp_path / "stranger")
    shutil.copy(d / "master.key", stranger / "master.key")  # knows the master, but is not authorized
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--curve-keys", str(d), "--master-bind-port", str(port), "--no-web"
    )
    bad = run_lcore(
        "-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "--curve-keys", str(stranger)
    )
    assert bad.wait(30) == 1, bad.output
    assert "refused this worker's CURVE key" in bad.output
    master.wait_for_output("CURVE key is not authorized", timeout=10)
    plain = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    master.wait_for_output("failed the CURVE handshake", timeout=15)
    plain.kill()
    assert "connected" not in master.output.split("Refused", 1)[-1] or "Worker" not in master.output


def test_open_master_warns(tmp_path, target, run_lcore) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    master = run_lcore("-f", str(lf), "-H", target.url, "--master", "--master-bind-port", str(free_port()), "--no-web")
    master.wait_for_output("without CURVE keys: anyone who can reach this port", timeout=20)
