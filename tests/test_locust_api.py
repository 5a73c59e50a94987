"""Details of Locust's public locustfile API that Locust's own unit tests check (Locust 2.47),
seen through ``import locust`` as a locustfile sees it."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import lcore.stats
from lcore.stats import MergedStats, RequestStats


def run_with_locust_names(code: str) -> str:
    script = "from lcore import compat\ncompat.install()\n" + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_task_decorator_survives_importing_the_task_module_first() -> None:
    out = run_with_locust_names(
        """
        from locust.user.task import TaskSet
        from locust.user import task
        from locust.user.sequential_taskset import SequentialTaskSet
        from locust.util.load_locustfile import is_user_class
        import lcore.users
        assert task is lcore.users.task and TaskSet is lcore.users.TaskSet
        assert SequentialTaskSet is lcore.users.SequentialTaskSet and is_user_class is lcore.users.is_user_class
        print("ok")
        """
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("locust", "Locust", "User"),
        ("locust", "HttpLocust", "HttpUser"),
        ("locust.contrib.fasthttp", "FastHttpLocust", "FastHttpUser"),
    ],
)
def test_the_classes_renamed_in_locust_1_say_so(module: str, old: str, new: str) -> None:
    out = run_with_locust_names(
        f"""
        from {module} import {old}
        try:
            class Mine({old}):
                pass
        except ImportError as e:
            print(e)
        """
    )
    assert out.strip() == (
        f"The {old} class has been renamed to {new} in version 1.0. "
        "For more info see: https://docs.locust.io/en/latest/changelog.html#changelog-1-0"
    )


def test_locust_stats_is_lcore_stats_so_a_locustfile_can_set_what_is_reported() -> None:
    out = run_with_locust_names(
        """
        import locust.stats, lcore.stats
        from locust.stats import stats_printer, stats_history, RequestStats
        locust.stats.PERCENTILES_TO_REPORT = [0.25, 0.5]
        print(locust.stats is lcore.stats, lcore.stats.report_percentiles())
        """
    )
    assert out.strip() == "True (0.25, 0.5)"


def _stats() -> MergedStats:
    recorder = RequestStats()
    for ms in (10.0, 20.0, 30.0, 40.0):
        recorder.record("GET", "/p", ms, 1, None)
    merged = MergedStats()
    merged.merge("w", recorder.take_delta())
    return merged


def test_percentiles_to_report_change_the_console_and_csv_reports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lcore.exporters.report_console import percentiles_table
    from lcore.exporters.report_csv import StatsHistoryWriter, write_csv_files

    monkeypatch.setattr(lcore.stats, "PERCENTILES_TO_REPORT", [0.25, 0.5, 0.999])
    table = percentiles_table(_stats())
    header = table.splitlines()[1].split()
    assert header[-3:] == ["25%", "50%", "99.9%"] and "66%" not in header
    write_csv_files(_stats(), str(tmp_path / "r"))
    with open(tmp_path / "r_stats.csv", newline="") as f:
        columns = next(csv.reader(f))
    # Locust's columns, then lcore's corrected ones for the same percentiles (issue 16)
    assert [c for c in columns if c.endswith("%") and not c.startswith("Corrected ")] == ["25%", "50%", "99.9%"]
    assert [c for c in columns if c.startswith("Corrected ")] == ["Corrected 25%", "Corrected 50%", "Corrected 99.9%"]
    writer = StatsHistoryWriter(str(tmp_path / "h"))
    assert writer.percentiles == (0.25, 0.5, 0.999)
    writer.close()


def test_percentiles_to_report_must_be_fractions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lcore.stats, "PERCENTILES_TO_REPORT", [50, 95])
    with pytest.raises(ValueError, match="fractions between 0 and 1"):
        lcore.stats.report_percentiles()


def test_a_stats_error_holds_the_exception_where_it_was_recorded_and_its_text_elsewhere() -> None:
    from lcore.env import Environment
    from lcore.stats import StatsError
    from lcore.stats_delta import StatsDelta

    env = Environment(user_classes=[])
    refused = ConnectionRefusedError(111, "Connection refused")
    for _ in range(3):
        env.events.request.fire(
            request_type="GET", name="/", response_time=1, response_length=0,
            exception=refused if _ == 0 else ConnectionRefusedError(111, "Connection refused"),
            context={},
        )  # fmt: skip
    (error,) = env.stats.errors.values()
    # in the recording process, as Locust's: the first exception object itself
    assert error.error is refused and error.occurrences == 3
    assert error.text == "ConnectionRefusedError(111, 'Connection refused')"
    assert env.stats.errors[StatsError.create_key("GET", "/", refused)] is error
    assert error.to_name() == "GET /: ConnectionRefusedError(111, 'Connection refused')"
    assert error.serialize()["error"] == error.text == StatsError.parse_error(refused)
    # what went over the wire (the master's view) is the text
    recorder = RequestStats()
    recorder.record("GET", "/", 1.0, 0, refused)
    merged = MergedStats()
    merged.merge("w1", StatsDelta.decode(recorder.take_delta().encode()))
    (remote,) = merged.errors.values()
    assert remote.error == remote.text == error.text


def test_a_user_stopped_through_locusts_state_attribute_ends_run_single_user() -> None:
    """Locust's own debugging test: a Timer sets ``user._state`` on the user that
    ``locust.debug._env.single_user_instance`` names, and run_single_user returns."""
    import gevent

    from lcore import single
    from lcore.user_lifecycle import (
        LOCUST_STATE_RUNNING,
        LOCUST_STATE_STOPPING,
        LOCUST_STATE_WAITING,
    )
    from lcore.users import User, constant, task

    class Looping(User):
        wait_time = constant(0)

        @task
        def nothing(self) -> None:
            pass

    seen: list[str] = []

    def stop_it() -> None:
        user = single._env.single_user_instance  # type: ignore[union-attr]
        seen.append(user._state)
        user._state = LOCUST_STATE_STOPPING

    gevent.spawn_later(0.3, stop_it)
    runner = gevent.spawn(single.run_single_user, Looping, loglevel=None)
    runner.join(timeout=10)
    assert runner.dead, "run_single_user did not return"
    assert len(seen) == 1 and seen[0] in (LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING)
