"""Issue 15's "Low" findings: mistakes caught before anything starts, spreadsheet-safe CSV,
worker messages that say what happened. Each through the real command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import lcore_command, wait_until

LOCUSTFILE = """\
from locust import HttpUser, task, constant

class U(HttpUser):
    wait_time = constant(0.05)

    @task
    def t(self):
        self.client.get("/")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    (tmp_path / "home").mkdir()
    return tmp_path


def run_cli(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "HOME": str(project / "home"), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        lcore_command(*args), cwd=project, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lcore: error:"), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HEADLESS = ("--headless", "-u", "1", "-r", "10", "-t", "2s")


# ---- 1. checked before anything starts --------------------------------------------------------


@pytest.mark.parametrize("host", ["notaurl", "http//example.com", "http:/example.com", "https://", "http://h:99999", "http://h:port"])
def test_bad_host_is_one_line_error(project: Path, host: str) -> None:
    assert_one_line_error(run_cli(project, *HEADLESS, "-H", host), "--host")


@pytest.mark.parametrize(
    "host",
    ["postgres://u:p@127.0.0.1:1/db", "mongodb://127.0.0.1:1", ":memory:", "./milvus.db", "localhost", "broker:1883",
     "host=127.0.0.1 dbname=x", "mqtt.example.com"],
)
def test_hosts_of_contrib_users_pass_validation(project: Path, host: str) -> None:
    # --list-commands validates the options, then only loads the locustfile
    result = run_cli(project, "--list", "-H", host)
    assert result.returncode == 0, result.stderr
    assert "U" in result.stdout


@pytest.mark.parametrize("flag", ["--csv", "--html", "--json-file", "--logfile"])
def test_output_into_missing_directory_is_one_line_error(project: Path, flag: str) -> None:
    result = run_cli(project, *HEADLESS, "-H", "http://127.0.0.1:1", flag, "missing/dir/out")
    assert_one_line_error(result, flag, "does not exist")


def test_output_onto_a_directory_is_one_line_error(project: Path) -> None:
    (project / "adir").mkdir()
    assert_one_line_error(run_cli(project, *HEADLESS, "-H", "http://127.0.0.1:1", "--html", "adir"), "--html", "directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_into_unwritable_directory_is_one_line_error(project: Path) -> None:
    ro = project / "ro"
    ro.mkdir(mode=0o500)
    result = run_cli(project, *HEADLESS, "-H", "http://127.0.0.1:1", "--html", str(ro / "r.html"))
    assert_one_line_error(result, "--html", "not writable")


def test_web_auth_without_colon_is_one_line_error(project: Path) -> None:
    assert_one_line_error(run_cli(project, "-H", "http://127.0.0.1:1", "--web-auth", "nopassword"), "--web-auth")


def test_bad_tls_files_are_one_line_error(project: Path) -> None:
    garbage = project / "garbage.pem"
    garbage.write_text("not a certificate\n")
    result = run_cli(project, "-H", "http://127.0.0.1:1", "--tls-cert", str(garbage), "--tls-key", str(garbage))
    assert_one_line_error(result, "--tls-cert", "PEM")
    result = run_cli(project, "-H", "http://127.0.0.1:1", "--tls-cert", "nope.pem", "--tls-key", "nope.key")
    assert_one_line_error(result, "--tls-cert", "nope.pem")


def test_good_tls_files_pass_validation(project: Path) -> None:
    from lcore.launcher.preflight import check_tls_files

    cert, key = project / "c.pem", project / "k.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)], capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip("no openssl")
    check_tls_files(str(cert), str(key))


def test_unreadable_home_config_is_one_line_error(project: Path) -> None:
    # Path.exists() raising (a HOME that cannot be searched; as root, a name too long) was a traceback
    result = run_cli(project, "--list", env={"HOME": str(project / ("a" * 300))})
    assert_one_line_error(result, ".locust.conf")  # the first file looked for there (Locust's)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_unsearchable_home_config_is_one_line_error(project: Path) -> None:
    home = project / "locked"
    home.mkdir()
    (home / ".lcore.conf").write_text("users = 2\n")
    home.chmod(0o000)
    try:
        assert_one_line_error(run_cli(project, "--list", env={"HOME": str(home)}), ".locust.conf")
    finally:
        home.chmod(0o700)


def test_unreadable_project_config_is_one_line_error(project: Path) -> None:
    (project / "lcore.conf").mkdir()  # a directory: reading it fails even as root
    assert_one_line_error(run_cli(project, "--list"), "lcore.conf")




# ---- 2. CSV formula injection -----------------------------------------------------------------

FORMULA_LOCUSTFILE = """\
from locust import User, task, constant

NAMES = ['=HYPERLINK("http://evil.example","x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\\tTabbed",
         "\\rReturn", "-", "+", "-1", "/plain"]

class U(User):
    wait_time = constant(0.05)

    @task
    def t(self):
        fire = self.environment.events.request.fire
        for name in NAMES:
            fire(request_type="GET", name=name, response_time=1, response_length=0, exception=None, context={})
        fire(request_type="=POST", name="/f", response_time=1, response_length=0,
             exception=RuntimeError("=1+1 error"), context={})
        raise ValueError("@evil exception")
"""


def test_csv_neutralises_formulas(project: Path) -> None:
    import csv

    (project / "formula.py").write_text(FORMULA_LOCUSTFILE)
    result = run_cli(project, "-f", "formula.py", "--headless", "-u", "1", "-r", "10", "-t", "2s", "--csv", "out",
                     "--csv-full-history", "--processes", "1", timeout=60)
    assert result.returncode in (0, 1), result.stderr
    with open(project / "out_stats.csv", newline="") as f:
        names = {row["Name"] for row in csv.DictReader(f)}
    assert {
        '\'=HYPERLINK("http://evil.example","x")', "'+cmd|' /C calc'!A0", "'-2+3", "'@SUM(1)", "'\tTabbed",
        "'\rReturn", "-", "+", "-1", "/plain", "/f", "Aggregated",
    } <= names, names
    assert not any(n.startswith(("=", "@", "\t", "\r")) for n in names)
    with open(project / "out_failures.csv", newline="") as f:
        failures = list(csv.DictReader(f))
    # the error is the exception's repr: it starts with the class name, so it stays as it is
    assert [(r["Method"], r["Error"]) for r in failures] == [("'=POST", "RuntimeError('=1+1 error')")], failures
    with open(project / "out_exceptions.csv", newline="") as f:
        exceptions = list(csv.DictReader(f))
    assert [r["Message"] for r in exceptions] == ["'@evil exception"], exceptions
    with open(project / "out_stats_history.csv", newline="") as f:
        history = {row["Name"] for row in csv.DictReader(f)}
    assert "'@SUM(1)" in history and "@SUM(1)" not in history


def test_csv_cell_rules() -> None:
    from lcore.exporters.report_csv import cell

    assert [cell(v) for v in ["=1", "+a", "-a", "@a", "\ta", "\ra", "-", "+", "-1", "+2.5", "a=1", "", 5]] == [
        "'=1", "'+a", "'-a", "'@a", "'\ta", "'\ra", "-", "+", "-1", "+2.5", "a=1", "", 5,
    ]


# ---- 3. worker-side messages say what happened ------------------------------------------------

WORKER_LOCUSTFILE = "from locust import User, task\n\nclass U(User):\n    @task\n    def t(self):\n        pass\n"


def test_worker_without_keys_refused_by_curve_master_says_so(project: Path, run_lcore) -> None:
    keys = project / "keys"
    made = subprocess.run(lcore_command("keys", "generate", str(keys)), capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    (project / "w.py").write_text(WORKER_LOCUSTFILE)
    port = free_port()
    run_lcore("-f", "w.py", "--master", "--curve-keys", str(keys), "--master-bind-port", str(port), "--no-web",
              cwd=project)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, timeout=20)
    # the -f - fetch path detects the refusal too, but on a loaded machine only after its retries:
    # checked here for the plain worker, whose timing is bounded
    for fetch in (False,):
        started = time.monotonic()
        worker = run_lcore("-f", "-" if fetch else "w.py", "--worker", "--master-port", str(port), cwd=project)
        assert worker.wait(20) == 1, worker.output
        assert time.monotonic() - started < 15
        assert "refused this worker: it requires CURVE keys (--curve-keys)" in worker.output, worker.output


def test_unresolvable_master_host_is_one_line_dns_error(project: Path) -> None:
    (project / "w.py").write_text(WORKER_LOCUSTFILE)
    result = run_cli(project, "-f", "w.py", "--worker", "--master-host", "no-such-host.invalid", "--connect-timeout", "1")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lcore: error: --master-host no-such-host.invalid: cannot resolve"), result.stderr
    assert "Waiting for the master" not in result.stderr


def test_waiting_worker_exits_promptly_on_sigterm_without_giving_up(project: Path, run_lcore) -> None:
    (project / "w.py").write_text(WORKER_LOCUSTFILE)
    worker = run_lcore("-f", "w.py", "--worker", "--master-port", str(free_port()), "--connect-timeout", "60",
                       cwd=project)
    worker.wait_for_output("Waiting for the master", timeout=20)
    time.sleep(3.5)  # the retry backoff has grown to 4 s and beyond: the wait SIGTERM must cut short
    sent = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0, worker.output
    assert time.monotonic() - sent < 1.5, worker.output
    assert "gave up" not in worker.output, worker.output


def test_gave_up_is_said_when_the_connect_timeout_has_passed(project: Path, run_lcore) -> None:
    (project / "w.py").write_text(WORKER_LOCUSTFILE)
    started = time.monotonic()
    worker = run_lcore("-f", "w.py", "--worker", "--master-port", str(free_port()), "--connect-timeout", "3.5",
                       cwd=project)
    assert worker.wait(30) == 1, worker.output
    took = time.monotonic() - started
    assert "gave up after 3.5 s" in worker.output, worker.output
    # not before the timeout, and not a backoff step (1+2+4 = 7 s) after it
    assert 3.5 <= took < 6, (took, worker.output)


# ---- 4. a --worker box restarts a worker process that was killed ------------------------------


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def test_worker_box_restarts_a_killed_worker_process(project: Path, run_lcore, target) -> None:
    port = free_port()
    master = run_lcore("-H", target.url, "--master", "--headless", "-u", "4", "-r", "20", "-t", "40s",
                       "--expect-workers", "2", "--master-bind-port", str(port), "--no-web", cwd=project)
    box = run_lcore("--worker", "--processes", "2", "--master-port", str(port), cwd=project)
    wait_until(lambda: master.output.count(" connected") >= 2, timeout=30)
    first = _children(box.proc.pid)
    assert len(first) == 2, first
    os.kill(first[0], signal.SIGKILL)
    box.wait_for_output("Restarting worker process", timeout=15)
    wait_until(lambda: len(_children(box.proc.pid)) == 2 and first[0] not in _children(box.proc.pid), timeout=15)
    wait_until(lambda: master.output.count(" connected") >= 3, timeout=30)
    # the box goes on with two processes (a remote worker whose master vanished before it was
    # told to quit keeps trying to reconnect, by design: the fixture ends the box)
    master.proc.send_signal(signal.SIGTERM)
    assert master.wait(30) in (0, 1), master.output
