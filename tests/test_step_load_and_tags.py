"""Step Load mode (a built-in shape), tags re-applied from the declared tasks, and the older
command lines of Locust guides: in memory first, then real masters and workers."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest
from test_engine import free_port, read_stats_csv

from lcore.step_load import StepLoadShape, from_options
from lcore.task_tags import apply_tags
from lcore.users import TaskSet, User, tag, task

# --- the step shape, on a clock the test turns ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_step_shape_adds_users_every_step_up_to_the_peak_then_holds() -> None:
    clock = Clock()
    shape = StepLoadShape(users=10, step_users=4, step_time=60, spawn_rate=2, clock=clock)
    seen = []
    for t in (0, 59.9, 60, 119, 120, 180, 3600):
        clock.now = 100.0 + t
        seen.append(shape.tick())
    # the last step tops up to -u (Locust 1.x held at 8 here: the last whole step below 10)
    assert seen == [(4, 2), (4, 2), (8, 2), (8, 2), (10, 2), (10, 2), (10, 2)]
    shape.reset_time()
    assert shape.tick() == (4, 2)


def test_step_shape_ends_the_test_at_the_run_time() -> None:
    clock = Clock()
    shape = StepLoadShape(
        users=6, step_users=2, step_time=10, spawn_rate=1, time_limit=25, clock=clock
    )
    clock.now += 24.9
    assert shape.tick() == (6, 1)
    clock.now += 0.1
    assert shape.tick() is None


def test_step_shape_from_options() -> None:
    from lcore.launcher.options import parse_options

    assert from_options(parse_options(["--demo"], {})) is None
    o = parse_options(
        [
            "--demo",
            "--headless",
            "--step-load",
            "--step-users",
            "3",
            "--step-time",
            "2m",
            "-u",
            "9",
            "-t",
            "10m",
        ],
        {},
    )
    shape = from_options(o)
    assert isinstance(shape, StepLoadShape)
    assert (shape.users, shape.step_users, shape.step_time, shape.spawn_rate, shape.time_limit) == (
        9,
        3,
        120,
        1.0,
        600,
    )
    assert shape.use_common_options  # -u, -r and -t are its parameters: no "ignored" warning
    assert shape.tick() == (3, 1.0)
    # a status page that starts the test with other figures sets them on the options
    o.num_users, o.spawn_rate, o.run_time = 2, 5.0, None
    assert shape.tick() == (2, 5.0) and shape.time_limit is None


# --- tags, applied again and again from the declared tasks --------------------------------


def _names(holder: type) -> list[str]:
    return sorted(t.__name__ for t in holder.tasks)


def test_tags_are_reapplied_from_the_declared_tasks() -> None:
    class Nested(TaskSet):
        @tag("a")
        @task
        def deep_a(self) -> None: ...

        @task
        def deep_plain(self) -> None: ...

    class Person(User):
        tasks = [tag("a")(Nested)]

        @tag("a")
        @task
        def only_a(self) -> None: ...

        @tag("b")
        @task
        def only_b(self) -> None: ...

        @task
        def plain(self) -> None: ...

    declared = _names(Person)
    apply_tags([Person], ["b"], None)  # what a worker's own --tags b leaves
    assert _names(Person) == ["only_b"]
    apply_tags([Person], ["a"], None)  # the master's --tags a: from the declared tasks
    assert _names(Person) == ["Nested", "only_a"]
    assert _names(Nested) == ["deep_a", "deep_plain"]  # a tagged TaskSet keeps all its tasks
    apply_tags([Person], None, ["a"])
    assert _names(Person) == ["only_b", "plain"]
    apply_tags([Person], None, None)
    assert _names(Person) == declared and _names(Nested) == ["deep_a", "deep_plain"]
    # tasks the locustfile assigns later (in an init listener, say) are the new declaration
    Person.tasks = [Person.only_a, Person.plain]
    apply_tags([Person], None, ["a"])
    assert _names(Person) == ["plain"]
    apply_tags([Person], None, None)
    assert _names(Person) == ["only_a", "plain"]


def test_the_master_sends_its_tags_with_the_locustfiles_options() -> None:
    from lcore.launcher.options import parse_options
    from lcore.launcher.processes import custom_options

    sent = custom_options(parse_options(["--demo", "--tags", "a", "b", "-E", "c"], {}))
    assert (sent["tags"], sent["exclude_tags"]) == (["a", "b"], ["c"])
    sent = custom_options(parse_options(["--demo"], {}))
    assert (sent["tags"], sent["exclude_tags"]) == (None, None)  # none: a worker drops its own, as Locust 2.47


# --- real runs ----------------------------------------------------------------------------

TAGGED = """
from locust import HttpUser, TaskSet, task, tag, constant

class Inner(TaskSet):
    @task
    def nested(self):
        self.client.get("/nested")
        self.interrupt()

class Tagged(HttpUser):
    wait_time = constant(0.05)
    tasks = [tag("a")(Inner)]

    @tag("a")
    @task
    def a(self):
        self.client.get("/a")

    @task
    def untagged(self):
        self.client.get("/b")

    @tag("a", "c")
    @task
    def a_and_c(self):
        self.client.get("/c")
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "locustfile.py"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.integration
@pytest.mark.parametrize(
    "worker_tags", [[], ["--tags", "b"]], ids=["worker-without-tags", "worker-own-tags"]
)
def test_the_masters_tags_decide_what_a_remote_worker_runs(
    tmp_path, target, run_lcore, worker_tags
) -> None:
    lf = _write(tmp_path, TAGGED)
    port = free_port()
    prefix = tmp_path / "run"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1", "-u", "2", "-r", "10",
        "-t", "2s", "--tags", "a", "--exclude-tags", "c", "--csv", str(prefix), "--master-bind-port", str(port),
        "--no-web",
    )  # fmt: skip
    worker = run_lcore(
        "-f",
        str(lf),
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(port),
        *worker_tags,
    )
    assert master.wait(60) == 0, master.output + worker.output
    assert worker.wait(20) == 0, worker.output
    counts = {path: n for (method, path), n in target.counts().items()}
    assert counts.get("/a", 0) > 0 and counts.get("/nested", 0) > 0, counts
    assert "/b" not in counts and "/c" not in counts, counts
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(counts.values())
    assert int(rows["Aggregated"]["Failure Count"]) == 0


@pytest.mark.integration
def test_step_load_ramps_in_steps_across_workers(tmp_path, target, run_lcore) -> None:
    lf = _write(
        tmp_path,
        """
        from locust import HttpUser, task, constant

        class Quick(HttpUser):
            wait_time = constant(0.1)
            @task
            def index(self):
                self.client.get("/")
        """,
    )
    prefix = tmp_path / "steps"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "--processes", "2", "-u", "5", "-r", "50",
        "--step-load", "--step-users", "2", "--step-time", "3s", "-t", "8s", "--csv", str(prefix),
        "--master-bind-port", str(free_port()), "--no-web",
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output
    assert "Step load (Locust 1.x's --step-load" in proc.output
    assert "are ignored" not in proc.output
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        rows = [(int(r["Timestamp"]), int(r["User Count"])) for r in csv.DictReader(f)]
    counts = [users for _, users in rows]
    while counts and counts[-1] == 0:  # the row written after the stop
        counts.pop()
    assert counts == sorted(counts) and max(counts) == 5, rows  # only up, never past -u
    first = {n: next(t for t, users in rows if users == n) for n in (2, 4, 5)}
    # steps at 0 s, 3 s and 6 s (the shape is read once a second: up to 1 s late)
    assert 2 <= first[4] - first[2] <= 5 and 2 <= first[5] - first[4] <= 5, rows
    assert sum(target.counts().values()) > 0


@pytest.mark.integration
def test_an_old_guides_distributed_command_line_runs(tmp_path, target, run_lcore) -> None:
    lf = _write(
        tmp_path,
        """
        from locust import HttpUser, task, constant

        class Quick(HttpUser):
            wait_time = constant(0.05)
            @task
            def index(self):
                self.client.get("/")
        """,
    )
    port = free_port()
    prefix = tmp_path / "old"
    # Locust 0.x/1.x: --no-web meant headless, slaves and hatching
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--no-web", "--expect-slaves", "1", "-u", "3",
        "--hatch-rate", "10", "-t", "2s", "--csv", str(prefix), "--master-bind-port", str(port),
    )  # fmt: skip
    worker = run_lcore(
        "-f", str(lf), "--slave", "--master-host", "127.0.0.1", "--master-port", str(port)
    )
    assert master.wait(60) == 0, master.output + worker.output
    assert worker.wait(20) == 0, worker.output
    for old, today in (
        ("--no-web", "--headless"),
        ("--expect-slaves", "--expect-workers"),
        ("--hatch-rate", "--spawn-rate"),
    ):
        assert f"lcore: notice: {old} is an old Locust option: today's is {today}" in master.output
        assert master.output.count(f"notice: {old} ") == 1  # once, not once per process
    assert "lcore: notice: --slave is an old Locust option: today's is --worker" in worker.output
    assert "Ramping to 3 users at a rate of 10.00 per second" in master.output
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


@pytest.mark.integration
def test_a_bad_value_of_a_locustfile_option_is_one_line_and_exit_1(tmp_path, run_lcore) -> None:
    lf = _write(
        tmp_path,
        """
        from locust import User, task, events

        @events.init_command_line_parser.add_listener
        def _(parser):
            parser.add_argument("--endpoints", choices=["a", "b"], is_multiple=True, default=["a"])

        class Idle(User):
            @task
            def nothing(self):
                pass
        """,
    )
    proc = run_lcore(
        "-f", str(lf), "--headless", "-t", "1s", "--endpoints", "a", "--endpoints", "z", "--no-web"
    )
    assert proc.wait(60) == 1, proc.output
    errors = [line for line in proc.output.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "argument --endpoints: invalid choice: 'z'" in errors[0], (
        proc.output
    )
    assert "Traceback" not in proc.output
