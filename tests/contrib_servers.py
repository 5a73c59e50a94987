"""Real servers on loopback for the lcore.contrib tests, each started and always stopped by
its fixture. A missing server program fails the test under CI (where run-tests.sh installs
it) and skips it elsewhere."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import wait_until
from test_engine import free_port


def need_program(name: str, found: str | None) -> str:
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed (run-tests.sh installs it)")
    pytest.skip(f"{name} is not installed")


def need_module(name: str) -> None:
    try:
        __import__(name)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Python package {name} is not installed (the test extra has it)")
        pytest.skip(f"Python package {name} is not installed")


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the postgres account then."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class Postgres:
    """A throwaway cluster in a temp dir, trust auth, listening on 127.0.0.1:<free port>,
    with pg_stat_statements loaded so a test can read how often each statement ran."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = need_program("PostgreSQL (initdb)", bins[-1] if bins else shutil.which("initdb"))
        self.bin = Path(initdb).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lcore-pg-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"

    def start(self) -> Postgres:
        run = _as_postgres_user()
        subprocess.run(
            [*run, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c autovacuum=off -c shared_preload_libraries=pg_stat_statements"
        )
        subprocess.run(
            [*run, str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
             "-l", str(self.dir / "log"), "-w", "-t", "30", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        return self

    def stop(self) -> None:
        subprocess.run(
            [*_as_postgres_user(), str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        yield server.start()
    finally:
        server.stop()


class Mosquitto:
    """A mosquitto broker on 127.0.0.1:<free port>, anonymous, logging connections."""

    def __init__(self, tmp_path: Path) -> None:
        self.exe = need_program("mosquitto", shutil.which("mosquitto") or _sbin("mosquitto"))
        self.port = free_port()
        self.log = tmp_path / "mosquitto.log"
        self.conf = tmp_path / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"log_dest file {self.log}\nlog_type all\nconnection_messages true\n"
            # as root, stay root: the log lives in the test's private temp dir
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            "persistence false\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_until(lambda: self.log.exists() and "running" in self.log.read_text(), timeout=10)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _sbin(name: str) -> str | None:
    path = Path("/usr/sbin") / name
    return str(path) if path.exists() else None


@contextmanager
def running_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()
