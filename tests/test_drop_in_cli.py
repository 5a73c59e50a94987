"""Locust users' command lines and config files keep working (Locust 2.47's behaviour, each
checked with a real run): the first user starts at once, -t with the web UI or on a worker is
accepted, --skip-log-setup leaves logging to the locustfile, locust.conf is read."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import wait_until
from test_drop_in_engine import headless
from test_engine import free_port, write

pytestmark = pytest.mark.integration

QUICK = """
from locust import HttpUser, constant, task

class Quick(HttpUser):
    wait_time = constant(0.05)

    @task
    def page(self):
        self.client.get("/")
"""


def test_the_first_user_starts_at_once(tmp_path, target, run_lcore) -> None:
    # Locust starts its first batch at once: -u 1 -r 1 -t 1s makes requests for about a second
    # (lcore started the first user 1/rate s in, so this run made none)
    code, out, _, _ = headless(tmp_path, run_lcore, target, QUICK, "-u", "1", "-r", "1", "-t", "1s")
    assert code == 0, out[-2000:]
    assert target.counts()[("GET", "/")] >= 5
    # Locust's lines, which CI scripts grep for
    for line in (
        "Ramping to 1 users at a rate of 1.00 per second",
        "Run time limit set to 1 seconds",
        'All users spawned: {"Quick": 1} (1 total users)',
        "--run-time limit reached, shutting down",
        "Shutting down (exit code 0)",
    ):
        assert line in out, line


def test_run_time_with_the_web_ui_fills_the_start_form(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, QUICK)
    port = free_port()
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "-t", "90s", "--web-port", str(port), "--web-host", "127.0.0.1",
        "--master-bind-port", str(free_port()),
    )  # fmt: skip

    def form() -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/start-form", timeout=2) as r:
                return json.load(r)
        except OSError:
            return None

    document = wait_until(form, timeout=30)
    assert document["run_time"] == 90, document  # as Locust's form, prefilled
    assert proc.proc.poll() is None  # no error, no test started by itself
    assert target.counts() == {}


def test_run_time_on_a_worker_is_ignored_as_locust_does(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, QUICK)
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1",
        "-u", "2", "-r", "2", "-t", "2s", "--no-web", "--master-bind-port", str(port),
    )  # fmt: skip
    # a conf file or LOCUST_RUN_TIME shared by every role reaches the worker too
    worker = run_lcore(
        "-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
        env={"LOCUST_RUN_TIME": "1h"},
    )  # fmt: skip
    assert master.wait(60) == 0, master.output
    assert worker.wait(30) == 0, worker.output
    assert "--run-time on a worker is ignored" in worker.output
    assert target.counts()[("GET", "/")] > 0


def test_skip_log_setup_leaves_logging_to_the_locustfile(tmp_path, target, run_lcore) -> None:
    source = QUICK.replace(
        "from locust import",
        "import logging\nlogging.basicConfig(format='MINE %(levelname)s %(message)s', level=logging.INFO)\n"
        "logging.getLogger('mine').info('hello from the locustfile')\nfrom locust import",
    )
    code, out, _, _ = headless(
        tmp_path, run_lcore, target, source, "-u", "1", "-r", "1", "-t", "1s", "--skip-log-setup"
    )
    assert code == 0, out[-2000:]
    assert "MINE INFO hello from the locustfile" in out
    assert "/INFO/mine:" not in out  # lcore's format is not set up over the locustfile's


def test_locust_conf_is_read(tmp_path, target, run_lcore) -> None:
    (tmp_path / "locust.conf").write_text(
        f"locustfile = locustfile.py\nheadless = true\nhost = {target.url}\nu = 2\nr 2\nrun-time = 1s\n"
    )
    write(tmp_path, QUICK)
    proc = run_lcore("--no-web", "--master-bind-port", str(free_port()))
    assert proc.wait(60) == 0, proc.output
    assert target.counts()[("GET", "/")] > 0


def test_a_script_runs_a_test_through_locust_main(tmp_path, target) -> None:
    """Locust's launcher recipe: ``sys.argv = [...]; from locust.main import main; main()``."""
    import subprocess
    import sys

    lf = write(tmp_path, QUICK)
    script = tmp_path / "launch.py"
    script.write_text(
        "import sys\n"
        "from locust.main import main\n"
        "from locust.util.timespan import parse_timespan\n"
        "from locust.util.rounding import proper_round\n"
        "assert parse_timespan('1m30s') == 90 and proper_round(2.5) == 3.0\n"
        f"sys.argv = ['locust', '-f', {str(lf)!r}, '-H', {target.url!r}, '--headless', '-u', '1',"
        f" '-r', '1', '-t', '1s', '--no-web', '--master-bind-port', '{free_port()}']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert target.counts()[("GET", "/")] > 0


GREENLET_DIES = QUICK + """
import logging
import gevent
from locust import events
from locust.log import greenlet_exception_logger
from locust.runners import MasterRunner

@events.init.add_listener
def on_init(environment, **kwargs):
    if isinstance(environment.runner, MasterRunner):
        def background():
            raise RuntimeError("the background job failed")
        gevent.spawn(background).link_exception(greenlet_exception_logger(logging.getLogger("mine")))
"""


def test_a_greenlet_linked_to_greenlet_exception_logger_makes_the_exit_code_2(tmp_path, target, run_lcore) -> None:
    code, out, _, _ = headless(tmp_path, run_lcore, target, GREENLET_DIES, "-u", "1", "-r", "1", "-t", "1s")
    assert code == 2, out[-2000:]  # Locust's code for an unhandled greenlet exception
    assert "Unhandled exception in greenlet" in out and "the background job failed" in out


def test_a_locustfile_named_locust_py_runs_as_in_locust(tmp_path, target, run_lcore) -> None:
    # Locust imports it as the module "locustfile"; its own `import locust` still gets Locust's API
    source = "import locust\nassert locust.HttpUser\n" + QUICK
    code, out, _, _ = headless(
        tmp_path, run_lcore, target, QUICK,
        "-u", "1", "-r", "1", "-t", "1s", "-f", str(write(tmp_path, source, "locust.py")),
    )  # fmt: skip
    assert code == 0, out[-2000:]
    assert target.counts()[("GET", "/")] > 0


def test_a_locustfile_given_as_a_url_is_fetched_as_locust_does(tmp_path, target, run_lcore) -> None:
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "remote_lf.py").write_text(QUICK)
    (served / "not_python.py").write_text("<html>not found</html>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        code, out, _, _ = headless(
            tmp_path, run_lcore, target, QUICK, "-u", "1", "-r", "1", "-t", "1s", "-f", f"{base}/remote_lf.py"
        )
        assert code == 0, out[-2000:]
        assert target.counts()[("GET", "/")] > 0
        for path, says in (("missing.py", "404"), ("not_python.py", "not Python code")):
            proc = run_lcore("-f", f"{base}/{path}", "--headless", "--no-web")
            assert proc.wait(30) == 1
            assert f"Failed to get locustfile from {base}/{path}" in proc.output and says in proc.output
            assert "Traceback" not in proc.output
    finally:
        server.shutdown()
        server.server_close()
