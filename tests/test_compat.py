"""``import locust`` inside lcore's processes, and firing events.request by hand."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

from lcore.event import Events
from lcore.stats import RequestStats


def test_locust_names_resolve_to_lcore_in_a_fresh_process() -> None:
    code = textwrap.dedent(
        """
        import importlib.util, sys
        assert importlib.util.find_spec("locust") is None or "lcore" in str(importlib.util.find_spec("locust").origin or "")
        from lcore import compat
        compat.install()
        import lcore, lcore.users, lcore.runners, lcore.wait_time
        from locust import HttpUser, FastHttpUser, User, TaskSet, SequentialTaskSet, task, tag, between, constant, constant_pacing, constant_throughput, events, LoadTestShape, run_single_user
        from locust.runners import MasterRunner, WorkerRunner, LocalRunner, STATE_STOPPED, STATE_STOPPING, STATE_CLEANUP
        from locust.exception import StopUser, RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet, CatchResponseError, LocustError
        from locust.env import Environment
        from locust.contrib.fasthttp import FastHttpUser as F2
        from locust.user.wait_time import between as b2
        from locust.user import wait_time
        import locust.event
        assert HttpUser is lcore.users.HttpUser and F2 is lcore.users.FastHttpUser
        assert b2 is lcore.wait_time.between and wait_time.between is b2
        assert events is lcore.events
        assert MasterRunner is lcore.runners.MasterRunner
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_no_locust_package_is_installed_by_lcore() -> None:
    """Only lcore's alias answers for ``locust``: no file, no distribution pip would take for
    Locust's (a real Locust installed later wins, see below)."""
    from importlib import metadata

    spec = importlib.util.find_spec("locust")
    assert spec is None or (spec.origin or "").startswith("lcore alias")
    try:
        dist = metadata.distribution("locust")
    except metadata.PackageNotFoundError:
        dist = None
    assert dist is None or dist.metadata["Name"].lower() == "locust" and "lcore" not in str(dist.files)


def test_firing_request_by_hand_records_like_http() -> None:
    events = Events()
    stats = RequestStats()
    events.request.recorder = stats.record
    seen = []
    events.request.add_listener(lambda **kw: seen.append(kw))
    events.request.fire(request_type="grpc", name="Echo", response_time=12.5, response_length=40, exception=None, context={})
    events.request.fire(request_type="grpc", name="Echo", response_time=30.0, response_length=0, exception=RuntimeError("down"), context={})
    delta = stats.take_delta()
    assert delta.num_requests == 2
    assert delta.num_failures == 1
    assert seen[0]["name"] == "Echo" and seen[1]["exception"].args == ("down",)


def _run(code: str, cwd: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if k != "LCORE_NO_LOCUST_ALIAS"}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
        cwd=cwd, env=full_env,
    )  # fmt: skip


def test_import_locust_works_in_any_process_of_the_environment(tmp_path) -> None:
    """No lcore process, no compat.install(): the site-packages .pth line makes it work."""
    result = _run(
        """
        import sys
        assert "gevent" not in sys.modules and "lcore.users" not in sys.modules
        from locust import HttpUser, run_single_user, task
        from locust.env import Environment
        import lcore.users
        assert HttpUser is lcore.users.HttpUser
        print("ok")
        """,
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_locust_alias_can_be_turned_off(tmp_path) -> None:
    result = _run("import locust", str(tmp_path), LCORE_NO_LOCUST_ALIAS="1")
    assert result.returncode == 1 and "No module named 'locust'" in result.stderr


def test_a_real_locust_wins_over_the_alias(tmp_path) -> None:
    real = tmp_path / "site" / "locust"
    real.mkdir(parents=True)
    (real / "__init__.py").write_text("REAL = True\n")
    result = _run(
        "import locust; print(getattr(locust, 'REAL', False))", str(tmp_path), PYTHONPATH=str(tmp_path / "site")
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
