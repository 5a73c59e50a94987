"""pytest-style locustfiles (Locust 2.47, issue 13): one file of ``test_*`` functions runs as
users under ``lcore -f`` and as tests under pytest, with lcore's ``session``/``fastsession``
fixtures. Real processes against the embedded target, counted at the target."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from test_engine import free_port, read_stats_csv, write

pytestmark = pytest.mark.integration

# Locust's examples/test_pytest.py and locust/test/test_pytest_locustfile.py, on the target
TEST_FILE = """
import os
import time

import pytest
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession
from locust.exception import CatchResponseError

PAGE = os.environ.get("PAGE", "/pytest/page")


def test_pages(session: HttpSession):
    session.get(PAGE).raise_for_status()  # a 500: the test fails (pytest), the pass ends (lcore)
    with session.get("/pytest/checked", catch_response=True) as resp:
        if "ok" not in resp.text:
            resp.failure("missing text")
    resp.raise_for_status()
    time.sleep(0.005)  # no wait_time in pytest-style files


def test_fast(fastsession: FastHttpSession):
    with fastsession.get("/pytest/fast", catch_response=True) as resp:
        resp.failure("always")
    pytest.raises(CatchResponseError, resp.raise_for_status)
    with fastsession.get("/status/404", catch_response=True) as resp:
        resp.success()
    resp.raise_for_status()  # success() wins over the status, as in Locust
    time.sleep(0.005)


@pytest.mark.parametrize("item", [1, 2])
def test_items(session, item):
    session.get(f"/pytest/items/{item}")
    time.sleep(0.005)


def helper_is_not_a_test(session):
    session.get("/pytest/never")
"""

CLASSES = ["test_pages", "test_fast", "test_items[1]", "test_items[2]"]


def run_headless(tmp_path, run_lcore, target, *args: str, env=None):
    path = write(tmp_path, TEST_FILE, "test_load.py")
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(path), "-H", target.url, "--headless", "--no-web",
        "--master-bind-port", str(free_port()), "--csv", str(prefix), *args, env=env,
    )  # fmt: skip
    code = proc.wait(60)
    return code, proc.output, prefix


def test_each_test_function_is_a_user_class(tmp_path, run_lcore) -> None:
    path = write(tmp_path, TEST_FILE, "test_load.py")
    proc = run_lcore("-f", str(path), "--list")
    assert proc.wait(30) == 0, proc.output
    assert proc.output.split() == ["Available", "Users:", *CLASSES]


def test_pytest_style_file_runs_as_users_with_exact_counts(tmp_path, target, run_lcore) -> None:
    code, out, prefix = run_headless(
        tmp_path, run_lcore, target, "-u", "4", "-r", "100", "-i", "200", "-t", "60s", "--processes", "2"
    )
    assert code == 1, out[-3000:]  # test_fast's failures set the exit code, as in Locust
    served = target.counts()
    passes = {name: served.get(("GET", path), 0) for name, path in [
        ("test_pages", "/pytest/page"), ("test_fast", "/pytest/fast"),
        ("test_items[1]", "/pytest/items/1"), ("test_items[2]", "/pytest/items/2"),
    ]}  # fmt: skip
    assert sum(passes.values()) == 200, served  # -i counts one pass of a test as one task run
    assert all(n > 0 for n in passes.values()), passes  # every class got a user (weight 1 each)
    assert served[("GET", "/pytest/checked")] == passes["test_pages"]
    assert served[("GET", "/status/404")] == passes["test_fast"]
    assert ("GET", "/pytest/never") not in served
    stats = read_stats_csv(prefix)
    assert int(stats["Aggregated"]["Request Count"]) == sum(served.values())
    assert int(stats["/pytest/fast"]["Failure Count"]) == passes["test_fast"]
    assert int(stats["/pytest/checked"]["Failure Count"]) == 0


def test_a_failed_request_ends_the_pass_quietly(tmp_path, target, run_lcore) -> None:
    code, out, prefix = run_headless(
        tmp_path, run_lcore, target, "-u", "1", "-r", "10", "-i", "50", "-t", "60s",
        "test_pages", env={"PAGE": "/status/500"},
    )  # fmt: skip
    assert code == 1, out[-3000:]
    served = target.counts()
    assert served == {("GET", "/status/500"): 50}  # raise_for_status stopped each pass there
    stats = read_stats_csv(prefix)
    assert stats["/status/500"]["Failure Count"] == "50"
    assert "Traceback" not in out  # a request error is not a task error (Locust's PytestUser)


def run_pytest(tmp_path, target, env=None) -> subprocess.CompletedProcess[str]:
    write(tmp_path, TEST_FILE, "test_load.py")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_load.py", "-H", target.url],
        cwd=tmp_path, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_same_file_passes_under_pytest(tmp_path, target) -> None:
    result = run_pytest(tmp_path, target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    assert target.counts() == {
        ("GET", p): 1
        for p in ["/pytest/page", "/pytest/checked", "/pytest/fast", "/status/404", "/pytest/items/1", "/pytest/items/2"]
    }


def test_pytest_fails_the_test_whose_request_fails(tmp_path, target) -> None:
    result = run_pytest(tmp_path, target, env={"PAGE": "/status/500"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 3 passed" in result.stdout
    assert "FAILED test_load.py::test_pages - lcore.http.HTTPError: 500" in result.stdout
    assert ("GET", "/pytest/checked") not in target.counts()


FAKE_LOCUST_PLUGIN = """
import pytest


@pytest.fixture
def session(user=None):
    yield "locust's session"
"""

WHICH_SESSION = """
def test_which(session, request):
    definitions = request._fixturemanager.getfixturedefs("session", request.node)
    assert [d.func.__module__ for d in definitions] == [EXPECTED]
    assert session == "locust's session" or hasattr(session, "get")
"""


@pytest.mark.parametrize("locust_plugin", [False, True])
def test_fixtures_never_clash_with_locusts_plugin(tmp_path, locust_plugin) -> None:
    """With Locust's plugin loaded (a real Locust installed), lcore registers no fixtures."""
    package = tmp_path / "pytest_locust"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(FAKE_LOCUST_PLUGIN)
    expected = "pytest_locust.plugin" if locust_plugin else "lcore.pytest_plugin"
    write(tmp_path, WHICH_SESSION.replace("EXPECTED", repr(expected)), "test_which.py")
    plugin_args = ["-p", "pytest_locust.plugin"] if locust_plugin else []
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args, "test_which.py"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
