"""The launcher's configuration: built once, frozen, every mistake one line before any fork."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from conftest import lcore_command

from lcore.launcher import options as options_module
from lcore.launcher.config import Config
from lcore.launcher.options import OptionsError, parse_options

LOCUSTFILE = """\
from locust import HttpUser, constant, events, task

@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--my-option", default="x")

class U(HttpUser):
    wait_time = constant(1)

    @task
    def t(self):
        self.client.get("/")
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "locustfile.py").write_text(LOCUSTFILE)
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def build(argv: list[str], env: dict[str, str] | None = None) -> Config:
    environ = {"HOME": str(Path.cwd() / "home"), **(env or {})}
    return Config.build(argv, parse_options(argv, environ, partial=True))


def test_the_configuration_is_frozen_and_says_what_the_launcher_decided(project: Path) -> None:
    config = build(["-f", "locustfile.py", "--processes", "3", "--bundle-max-mb", "2"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.local_workers = 1  # type: ignore[misc]
    assert config.locustfile == str(project / "locustfile.py")
    assert config.locustfiles == [str(project / "locustfile.py")]
    assert (config.local_workers, config.worker_count_expected) == (3, 3)
    assert config.master_bind_endpoint is None  # a local run opens no TCP port for workers
    assert config.bundle_max_bytes == 2 * 1024 * 1024
    master = build(["-f", "locustfile.py", "--master", "--expect-workers", "4", "--master-bind-host", "::1"])
    assert (master.local_workers, master.worker_count_expected) == (0, 4)
    assert master.master_bind_endpoint == "tcp://[::1]:5557"


def test_locust_environment_variables_and_config_files_reach_the_configuration(project: Path) -> None:
    (project / "lcore.conf").write_text("heartbeat-interval = 2\nheartbeat-timeout = 9\n")
    config = build(
        ["-f", "locustfile.py", "--worker"],
        {"LOCUST_MASTER_HOST": "127.0.0.1", "LOCUST_MASTER_PORT": "6000", "LOCUST_PROCESSES": "2"},
    )
    assert config.master_endpoint == "tcp://127.0.0.1:6000"
    assert (config.worker, config.local_workers) == (True, 2)
    assert (config.heartbeat_interval, config.heartbeat_timeout) == (2.0, 9.0)


def test_a_fetched_locustfile_cannot_be_inspected(project: Path) -> None:
    with pytest.raises(OptionsError, match="only runs a worker"):
        build(["-f", "-", "--worker", "--list"])
    assert build(["-f", "-", "--worker"]).fetched


def test_a_child_reads_its_locustfile_options_without_checking_the_values_again(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lcore.event import events
    from lcore.launcher.processes import load_environment

    # the locustfile's listener goes on the global hook: gone again after this test
    hook = events.init_command_line_parser
    monkeypatch.setattr(hook, "_handlers", list(hook._handlers))
    config = build(["-f", "locustfile.py", "-H", "http://127.0.0.1:1", "--my-option", "y"])

    def checked_again(_options: object) -> None:
        raise AssertionError("the launcher has checked these values already")

    monkeypatch.setattr(options_module, "check_world", checked_again)
    env, _loaded, parsed = load_environment(config)
    assert env.parsed_options is parsed
    assert parsed.my_option == "y"  # the locustfile's own option, for the locustfile
    assert parsed.locustfile == config.locustfile


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--web-auth", ":secret"], "--web-auth"),  # a colon, but no user name
        (["--metrics-buckets", "a,b"], "--metrics-buckets"),
        (["--metrics-buckets", "2,1"], "strictly increasing"),
    ],
)
def test_what_the_web_server_would_refuse_is_one_line_before_any_fork(
    project: Path, args: list[str], words: str
) -> None:
    result = subprocess.run(
        lcore_command("-f", "locustfile.py", "-H", "http://127.0.0.1:1", "--web-port", "0", *args),
        cwd=project,
        env={**os.environ, "HOME": str(project / "home")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lcore: error:"), result.stderr
    assert words in lines[0]
    assert "/master/" not in result.stdout + result.stderr  # the master never started


def test_a_child_maps_out_onto_the_options_that_do_the_work(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out csv=... is --csv in the master's parsed_options too, as the launcher saw it."""
    from lcore.event import events
    from lcore.launcher.processes import load_environment

    hook = events.init_command_line_parser
    monkeypatch.setattr(hook, "_handlers", list(hook._handlers))
    config = build(["-f", "locustfile.py", "-H", "http://127.0.0.1:1", "--out", "csv=results"])
    _env, _loaded, parsed = load_environment(config)
    assert parsed.csv_prefix == "results"
