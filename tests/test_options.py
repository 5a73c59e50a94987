"""Options: Locust's names and defaults, config files < environment < command line, errors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from lcore.launcher.options import (
    OptionsError,
    build_parser,
    find_locustfile,
    find_locustfiles,
    parse_options,
    resolve_processes,
    validate,
)
from lcore.launcher.timespan import parse_timespan


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with a locustfile as the working directory, and an empty home."""
    (tmp_path / "home").mkdir()
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "locustfile.py").write_text("from locust import User\n")
    monkeypatch.chdir(proj)
    return proj


@pytest.fixture
def home(project: Path) -> Path:
    return project.parent / "home"


def parse(
    argv: list[str], env: dict[str, str] | None = None, **kwargs: object
) -> argparse.Namespace:
    """parse_options with a private HOME, so the developer's ~/.lcore.conf never leaks in."""
    environ = {"HOME": str(Path.cwd().parent / "home"), **(env or {})}
    return parse_options(argv, environ, **kwargs)  # type: ignore[arg-type]


# --- defaults and names ------------------------------------------------------------------

# Locust's defaults (locust/argument_parser.py), by Locust's namespace attribute.
LOCUST_DEFAULTS = {
    "locustfile": "locustfile",
    "config": None,
    "host": None,
    "num_users": None,
    "spawn_rate": None,
    "run_time": None,
    "list_commands": False,
    "web_host": "",
    "web_port": 8089,
    "headless": False,
    "autostart": False,
    "autoquit": -1,
    "headful": False,
    "web_login": False,
    "tls_cert": "",
    "tls_key": "",
    "class_picker": False,
    "web_base_path": "",
    "master": False,
    "master_bind_host": "*",
    "master_bind_port": 5557,
    "expect_workers": 1,
    "expect_workers_max_wait": 0,
    "enable_rebalancing": False,
    "worker": False,
    "processes": None,
    "master_host": "127.0.0.1",
    "master_port": 5557,
    "tags": None,
    "exclude_tags": None,
    "csv_prefix": None,
    "stats_history_enabled": False,
    "print_stats": False,
    "only_summary": False,
    "reset_stats": False,
    "html_file": None,
    "json": False,
    "json_file": None,
    "skip_log_setup": False,
    "loglevel": "INFO",
    "logfile": None,
    "show_task_ratio": False,
    "show_task_ratio_json": False,
    "exit_code_on_error": 1,
    "stop_timeout": 0,
    "equal_weights": False,
    "user_classes": [],
}

LCORE_DEFAULTS = {
    "stats_interval": 1.0,
    "heartbeat_interval": 1.0,
    "heartbeat_timeout": 3.0,
    "demo": False,
    "curve_keys": None,
    "run_single_user": False,
    "version": False,
}


def test_defaults_equal_locusts(project: Path) -> None:
    options = vars(parse([]))
    assert {k: options[k] for k in LOCUST_DEFAULTS} == LOCUST_DEFAULTS
    assert {k: options[k] for k in LCORE_DEFAULTS} == LCORE_DEFAULTS
    assert options["locustfiles"] == [str(project / "locustfile.py")]
    assert options["_unknown"] == []


def test_locust_command_line_sets_locusts_attributes(project: Path) -> None:
    argv = "-f locustfile.py -H http://t -u 50 -r 2.5 -t 1h30m --headless -P 9000 -L debug "
    argv += "-T a b -E c -s 10s --csv out --csv-full-history --html r.html --json-file r "
    argv += "--master --master-bind-host 0.0.0.0 --master-bind-port 6000 --expect-workers 3 "
    argv += "--expect-workers-max-wait 30 --exit-code-on-error 3 --autoquit 5 --processes -1 "
    argv += "--reset-stats --only-summary --enable-rebalancing --web-login UserA UserB"
    o = parse(argv.split())
    assert (o.locustfile, o.host, o.num_users, o.spawn_rate, o.run_time) == (
        "locustfile.py",
        "http://t",
        50,
        2.5,
        5400,
    )
    assert (o.headless, o.web_port, o.loglevel, o.stop_timeout) == (True, 9000, "DEBUG", 10)
    assert (o.csv_prefix, o.stats_history_enabled, o.html_file, o.json_file) == (
        "out",
        True,
        "r.html",
        "r",
    )
    assert (o.master, o.master_bind_host, o.master_bind_port) == (True, "0.0.0.0", 6000)
    assert (o.expect_workers, o.expect_workers_max_wait, o.exit_code_on_error) == (3, 30, 3)
    assert (o.autoquit, o.processes, o.reset_stats, o.only_summary) == (5, -1, True, True)
    assert o.enable_rebalancing
    assert o.web_login
    # -T and -E take any number of words, so user classes go first or after other options
    assert (o.tags, o.exclude_tags) == (["a", "b"], ["c"])
    assert o.user_classes == ["UserA", "UserB"]


def test_worker_options_and_list_flags(project: Path) -> None:
    o = parse(["--worker", "--master-host", "10.0.0.1", "--master-port", "6001", "-l", "UserX"])
    assert (o.worker, o.master_host, o.master_port, o.list_commands) == (
        True,
        "10.0.0.1",
        6001,
        True,
    )
    assert o.user_classes == ["UserX"]


def test_locustfile_without_py_and_no_web(project: Path) -> None:
    (project / "other.py").write_text("")
    o = parse(["-f", "other", "--no-web", "--headless"])
    assert o.locustfiles == [str(project / "other.py")]
    # lcore's --no-web turns the HTTP server off; with --headless it is no old option
    assert o.no_web is True and o.headless is True and o._notices == []


def test_build_parser_without_help() -> None:
    assert "-h" not in build_parser(add_help=False)._option_string_actions
    assert "-h" in build_parser()._option_string_actions


# --- precedence ---------------------------------------------------------------------------


def test_precedence_config_files_then_environment_then_command_line(
    project: Path, home: Path
) -> None:
    (home / ".lcore.conf").write_text("host = http://from-home\nusers = 1\nweb-port = 1001\n")
    assert (parse([]).host, parse([]).num_users) == ("http://from-home", 1)

    (project / "lcore.conf").write_text("host = http://from-cwd\nusers = 2\n")
    assert (parse([]).host, parse([]).num_users, parse([]).web_port) == ("http://from-cwd", 2, 1001)

    (project / "pyproject.toml").write_text('[tool.lcore]\nhost = "http://from-pyproject"\n')
    assert parse([]).host == "http://from-pyproject"

    extra = project / "extra.conf"
    extra.write_text("host = http://from-config-option\n")
    assert parse(["--config", str(extra)]).host == "http://from-config-option"

    env = {"LCORE_HOST": "http://from-env"}
    assert parse(["--config", str(extra)], env).host == "http://from-env"
    o = parse(["--config", str(extra), "-H", "http://from-cli"], env)
    assert (o.host, o.num_users, o.web_port) == ("http://from-cli", 2, 1001)


def test_locusts_config_files_are_read_beneath_lcores(project: Path, home: Path) -> None:
    """A Locust user's locust.conf, ~/.locust.conf and [tool.locust] keep working (measured
    with Locust 2.47: all three are its defaults); lcore's names win where both are set."""
    (home / ".locust.conf").write_text("users = 3\nweb-port = 1003\n")
    assert (parse([]).num_users, parse([]).web_port) == (3, 1003)
    (project / "locust.conf").write_text("headless = true\nu = 4\nr 2\nH = http://from-locust-conf\n")
    o = parse([])
    assert (o.headless, o.num_users, o.spawn_rate, o.host) == (True, 4, 2.0, "http://from-locust-conf")
    (project / "lcore.conf").write_text("users = 5\n")
    assert (parse([]).num_users, parse([]).spawn_rate) == (5, 2.0)
    (project / "pyproject.toml").write_text(
        '[tool.locust]\nhost = "http://from-tool-locust"\nrun-time = "1m"\n'
        '[tool.lcore]\nrun-time = "2m"\n'
    )
    assert (parse([]).host, parse([]).run_time) == ("http://from-tool-locust", 120)
    other = project / "ci.toml"
    other.write_text('[tool.locust]\nusers = 9\n')
    assert parse(["--config", str(other)]).num_users == 9


def test_false_in_a_later_source_switches_a_flag_off(project: Path, home: Path) -> None:
    (home / ".lcore.conf").write_text("headless = true\nreset-stats = yes\n")
    assert parse([]).headless is True
    (project / "lcore.conf").write_text("headless = false\n")
    assert (parse([]).headless, parse([]).reset_stats) == (False, True)
    assert parse([], {"LCORE_HEADLESS": "1"}).headless is True
    assert parse([], {"LCORE_RESET_STATS": "off"}).reset_stats is False
    assert parse(["--headless"], {"LCORE_HEADLESS": "false"}).headless is True


def test_headful_undoes_headless_from_a_config_file(project: Path) -> None:
    (project / "lcore.conf").write_text("headless = true\n")
    assert parse(["--headful"]).headless is False


# --- config file formats --------------------------------------------------------------------


def test_conf_format(project: Path) -> None:
    (project / "lcore.conf").write_text(
        "# Locust-style config\n"
        "[anything]\n"
        "; another comment\n"
        "locustfile = locustfile.py\n"
        "host: http://example.com/#anchor  # trailing comment\n"
        "spawn_rate 7\n"
        'run-time = "2m"\n'
        "headless\n"
        "tags = [Critical, Normal]\n"
        "exclude-tags = slow\n"
        "--expect-workers = 4\n"
        "master = true\n"
    )
    o = parse([])
    assert o.host == "http://example.com/#anchor"
    assert (o.spawn_rate, o.run_time, o.headless, o.expect_workers) == (7.0, 120, True, 4)
    assert (o.tags, o.exclude_tags, o.master) == (["Critical", "Normal"], ["slow"], True)


def test_pyproject_tool_lcore(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        "[project]\nname = 'x'\n\n"
        "[tool.lcore]\n"
        "users = 100\n"
        "spawn-rate = 10.5\n"
        'run-time = "10m"\n'
        "headless = true\n"
        'tags = ["Critical", "Normal"]\n'
        "\n[tool.other]\nusers = 5\n"
    )
    o = parse([])
    assert (o.num_users, o.spawn_rate, o.run_time, o.headless) == (100, 10.5, 600, True)
    assert o.tags == ["Critical", "Normal"]


def test_pyproject_without_tool_lcore_is_ignored(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.ruff]\nline-length = 100\n")
    assert parse([]).num_users is None


def test_pyproject_read_without_tomllib(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.10 without tomli: a small reader handles [tool.lcore]."""
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", None)
    (project / "pyproject.toml").write_text(
        "[tool.lcore]  # ours\n"
        "users = 1_000\n"
        "spawn-rate = 2.5\n"
        "run-time = '1h'  # a literal string\n"
        'host = "http://h/#x"\n'
        "headless = true\n"
        "tags = [\n  'a',  # first\n  \"b\",\n]\n"
        "[tool.lcore.nested]\nusers = 3\n"
    )
    o = parse([])
    assert (o.num_users, o.spawn_rate, o.run_time, o.host) == (1000, 2.5, 3600, "http://h/#x")
    assert (o.headless, o.tags) == (True, ["a", "b"])


def test_broken_pyproject_is_an_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.lcore\nusers = \n")
    with pytest.raises(OptionsError, match="pyproject.toml"):
        parse([])


def test_unknown_config_key_is_an_error_unless_partial(project: Path) -> None:
    (project / "lcore.conf").write_text("users = 3\nmy-custom = 1\n")
    with pytest.raises(OptionsError, match=r"lcore.conf, line 2: unknown option 'my-custom'"):
        parse([])
    assert parse([], partial=True).num_users == 3


# --- environment ------------------------------------------------------------------------------


def test_environment_lcore_and_locust_prefixes(project: Path) -> None:
    (project / "other.py").write_text("")
    env = {
        "LCORE_USERS": "7",
        "LOCUST_USERS": "8",  # LCORE_ wins
        "LOCUST_SPAWN_RATE": "3",
        "LCORE_LOCUSTFILE": "other",
        "LOCUST_RUN_TIME": "5m",
        "LOCUST_HEADLESS": "true",
        "LOCUST_TAGS": "a b",
        "LOCUST_USER_CLASSES": "U1 U2",
        "LCORE_HOST": "",  # empty means unset
        "LOCUST_HOST": "http://locust",
    }
    o = parse([], env)
    assert (o.num_users, o.spawn_rate, o.run_time, o.headless) == (7, 3.0, 300, True)
    assert (o.locustfiles, o.tags, o.user_classes) == (
        [str(project / "other.py")],
        ["a", "b"],
        ["U1", "U2"],
    )
    assert o.host == "http://locust"
    assert parse(["U3"], env).user_classes == ["U3"]


def test_environment_locusts_own_variable_names(project: Path) -> None:
    env = {
        "LOCUST_MODE_WORKER": "true",
        "LOCUST_MASTER_NODE_HOST": "10.1.1.1",
        "LOCUST_MASTER_NODE_PORT": "7000",
    }
    o = parse([], env)
    assert (o.worker, o.master_host, o.master_port) == (True, "10.1.1.1", 7000)
    assert parse([], {"LOCUST_MODE_MASTER": "1"}).master is True
    assert parse([], {"LCORE_MASTER": "1"}).master is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LCORE_USERS": "ten"},
            "environment variable LCORE_USERS: --users: invalid int value: 'ten'",
        ),
        (
            {"LOCUST_RUN_TIME": "10x"},
            "environment variable LOCUST_RUN_TIME: --run-time: invalid time span",
        ),
        ({"LCORE_HEADLESS": "maybe"}, "LCORE_HEADLESS: --headless: expected true or false"),
        ({"LCORE_LOGLEVEL": "loud"}, "LCORE_LOGLEVEL: --loglevel: invalid choice"),
    ],
)
def test_bad_environment_values(project: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(OptionsError) as caught:
        parse([], env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- a locustfile's own options --------------------------------------------------------------


def add_custom(parser: argparse.ArgumentParser) -> None:
    """What a locustfile's init_command_line_parser listener does, Locust keywords included."""
    parser.add_argument(
        "--my-arg", default="dflt", env_var="LOCUST_MY_ARG", is_secret=True, help="mine"
    )
    group = parser.add_argument_group("Custom")
    group.add_argument("--my-int", type=int, default=1, include_in_web_ui=False)
    group.add_argument("--my-flag", action="store_true", env_var="MY_FLAG")
    group.add_argument("--user", help="a prefix of --users, which must not matter")


def test_custom_options_from_every_source(project: Path) -> None:
    o = parse([], extra_parser_hook=add_custom)
    assert (o.my_arg, o.my_int, o.my_flag, o.user) == ("dflt", 1, False, None)

    assert parse(["--my-arg", "cli", "--my-int", "5"], extra_parser_hook=add_custom).my_int == 5
    assert parse([], {"LCORE_MY_ARG": "env"}, extra_parser_hook=add_custom).my_arg == "env"
    assert parse([], {"LOCUST_MY_ARG": "locust"}, extra_parser_hook=add_custom).my_arg == "locust"
    assert parse([], {"LCORE_MY_INT": "9"}, extra_parser_hook=add_custom).my_int == 9
    assert parse([], {"MY_FLAG": "true"}, extra_parser_hook=add_custom).my_flag is True

    (project / "lcore.conf").write_text("my_arg = conf\nmy-flag = true\nmy-int = 4\n")
    o = parse([], {"LCORE_MY_INT": "6"}, extra_parser_hook=add_custom)
    assert (o.my_arg, o.my_flag, o.my_int) == ("conf", True, 6)
    assert parse(["--my-arg", "cli"], extra_parser_hook=add_custom).my_arg == "cli"


def test_custom_options_are_described_for_the_status_page(project: Path) -> None:
    described = {c.dest: c for c in parse([], extra_parser_hook=add_custom)._custom_options}
    assert set(described) == {"my_arg", "my_int", "my_flag", "user"}
    assert described["my_arg"].is_secret
    assert described["my_arg"].help == "mine"
    assert described["my_int"].include_in_web_ui is False
    assert described["my_arg"].flag == "--my-arg"
    assert described["my_arg"].default == "dflt"


def test_partial_parse_keeps_unknown_options(project: Path) -> None:
    argv = "--my-arg v --user bob --my-int=3 --processes 4 -u 2 UserA UserB".split()
    o = parse(argv, partial=True)
    assert o._unknown == ["--my-arg", "v", "--user", "bob", "--my-int=3"]
    assert (o.user_classes, o.processes, o.num_users) == (["UserA", "UserB"], 4, 2)
    # a word right after an unknown option is taken for its value, not for a user class
    assert parse(["--my-flag", "UserA"], partial=True)._unknown == ["--my-flag", "UserA"]
    with pytest.raises(OptionsError, match="unrecognized arguments: --my-arg"):
        parse(["--my-arg", "v"])
    with pytest.raises(OptionsError, match="invalid int value: 'bob'"):
        parse(argv)  # strict and without the locustfile's options, --user abbreviates --users
    strict = parse(argv, extra_parser_hook=add_custom)
    assert (strict.my_arg, strict.user, strict.my_int, strict.num_users) == ("v", "bob", 3, 2)
    assert strict.user_classes == ["UserA", "UserB"]
    assert strict._unknown == []


def test_required_custom_option_may_come_from_the_environment(project: Path) -> None:
    def hook(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--token", required=True)

    with pytest.raises(OptionsError, match="required: --token"):
        parse([], extra_parser_hook=hook)
    assert parse([], {"LCORE_TOKEN": "t"}, extra_parser_hook=hook).token == "t"


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["-u", "abc"], "invalid int value: 'abc'"),
        (["--processes", "many"], "invalid int value: 'many'"),
        (["-r", "fast"], "invalid float value: 'fast'"),
        (["-t", "10x", "--headless"], "invalid time span '10x'"),
        (["--stop-timeout", "1d"], "invalid time span '1d'"),
        (["--master", "--worker"], "--master cannot be combined with --worker"),
        (["--processes", "0"], "--processes must be a positive number or -1"),
        (["--processes", "-2"], "--processes must be a positive number or -1"),
        (["--users", "-1"], "--users must not be negative"),
        (["--spawn-rate", "0"], "--spawn-rate must be greater than 0"),
        (["--spawn-rate", "-1"], "--spawn-rate must be greater than 0"),
        (["--expect-workers", "0"], "--expect-workers must be at least 1"),
        (["--config", "missing.conf"], "Could not read config file missing.conf"),
        (["-f", "nothere"], "Could not find 'nothere.py'"),
        (["-f", "nothere.py"], "Could not find 'nothere.py'"),
        (["-L", "verbose"], "invalid choice: 'VERBOSE'"),
        (["--csv-full-history"], "--csv-full-history requires --csv"),
        (["--heartbeat-interval", "5"], "--heartbeat-timeout (3.0) must be longer"),
        (["--web-port", "70000"], "--web-port must be between 0 and 65535"),
        (["-f", "-"], "needs --worker"),
        (["--run-single-user", "--master"], "--run-single-user runs in this process"),
        (["--hatch-rate", "fast"], "argument --hatch-rate: invalid float value: 'fast'"),
        (["--expect-slaves", "x"], "argument --expect-slaves: invalid int value: 'x'"),
        (["--step-users", "2"], "--step-users and --step-time can only be used together"),
        (["--step-load", "-u", "4"], "--step-load needs --step-users N and --step-time T"),
        (["--step-load", "--step-users", "2", "--step-time", "1m"], "--step-load needs -u/--users"),
        (
            ["--step-load", "--step-users", "5", "--step-time", "1m", "-u", "4"],
            "--step-users (5) must not be more than -u/--users (4)",
        ),
        (["--step-load", "--step-users", "0", "--step-time", "1m", "-u", "4"], "at least 1"),
        (["--step-load", "--step-users", "1", "--step-time", "0", "-u", "4"], "at least 1 second"),
        (["--step-load", "--step-users", "1", "--step-time", "9x", "-u", "4"], "invalid time span"),
        (
            ["--worker", "--step-load", "--step-users", "1", "--step-time", "1m", "-u", "4"],
            "--step-load belongs on the master",
        ),
        (["-u"], "expected one argument"),
    ],
)
def test_user_errors_raise_one_line_options_error(
    project: Path, argv: list[str], message: str
) -> None:
    with pytest.raises(OptionsError) as caught:
        parse(argv)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert "usage:" not in text


def test_an_unknown_option_names_the_closest_one_on_the_same_line(project: Path) -> None:
    # as Locust's "Did you mean '--spawn-rate'?", which it prints on a second line
    with pytest.raises(
        OptionsError,
        match=r"^unrecognized arguments: --spwan-rate=3 \(did you mean --spawn-rate\?\)$",
    ):
        parse(["--spwan-rate=3"])
    with pytest.raises(OptionsError, match=r"^unrecognized arguments: --zzzzzz$"):
        parse(["--zzzzzz"])


def test_worker_may_fetch_the_locustfile_from_the_master(project: Path) -> None:
    (project / "locustfile.py").unlink()
    assert parse(["-f", "-", "--worker"]).locustfiles == []


def test_missing_default_locustfile(project: Path) -> None:
    (project / "locustfile.py").unlink()
    with pytest.raises(OptionsError, match=r"^Could not find 'locustfile.py'\. "):
        parse([])
    assert parse(["--demo"]).locustfiles == []  # the demo needs none


def test_unreadable_config_file(project: Path) -> None:
    (project / "dir.conf").mkdir()
    with pytest.raises(OptionsError, match="Could not read config file dir.conf"):
        parse(["--config", "dir.conf"])
    (project / "bad.conf").write_bytes(b"host = \xff\xfe\n")
    with pytest.raises(OptionsError, match="Could not read config file bad.conf"):
        parse(["--config", "bad.conf"])


def test_bad_value_in_config_file_names_file_and_line(project: Path) -> None:
    (project / "lcore.conf").write_text("# comment\nusers = lots\n")
    with pytest.raises(
        OptionsError, match=r"lcore.conf, line 2: --users: invalid int value: 'lots'"
    ):
        parse([])


def test_help_prints_and_exits_zero(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for partial in (False, True):
        with pytest.raises(SystemExit) as caught:
            parse(["--help"], partial=partial)
        assert caught.value.code == 0
        out = capsys.readouterr().out
        assert "--spawn-rate" in out
        assert "--master-bind-port" in out
        assert "LCORE_" in out


def test_help_shows_custom_options(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["-h"], extra_parser_hook=add_custom)
    assert "--my-arg" in capsys.readouterr().out


def test_version_sets_attribute_and_prints_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "locustfile.py").unlink()
    (project / "lcore.conf").write_text("users = broken\n")  # must not stop `lcore -V`
    for argv in (["--version"], ["-V"]):
        assert parse(argv).version is True
        assert parse(argv, partial=True).version is True
    assert capsys.readouterr() == ("", "")


def test_validate_directly() -> None:
    validate(argparse.Namespace(master=True, worker=False, processes=-1, num_users=0))
    with pytest.raises(OptionsError):
        validate(argparse.Namespace(master=True, worker=True))


# --- timespans ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("90", 90),
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("1h30m", 5400),
        ("2h5m10s", 7510),
        ("1h10s", 3610),
        ("5m30s", 330),
        (" 20m ", 1200),
        ("300s", 300),
    ],
)
def test_parse_timespan(text: str, seconds: int) -> None:
    assert parse_timespan(text) == seconds


@pytest.mark.parametrize(
    "text", ["", " ", "10x", "1d", "1h30", "m", "1.5m", "-5", "10s5m", "h", "1 h", "²"]
)
def test_parse_timespan_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="valid forms: 20, 20s, 3m, 2h, 1h20m"):
        parse_timespan(text)


# --- locustfiles and processes ---------------------------------------------------------------


def test_find_locustfile(project: Path) -> None:
    path = str(project / "locustfile.py")
    assert find_locustfile("locustfile") == path
    assert find_locustfile("locustfile.py") == path
    assert find_locustfile(path) == path
    with pytest.raises(OptionsError, match=r"^Could not find 'x\.py'\. [^\n]*$"):
        find_locustfile("x")
    (project / "locust.py").write_text("")
    assert find_locustfile("locust.py") == str(project / "locust.py")  # Locust loads it too


def test_find_locustfiles_lists_and_directories(project: Path) -> None:
    tests = project / "tests"
    (tests / "sub").mkdir(parents=True)
    for name in ("a.py", "_helper.py", "sub/b.py", "notes.txt"):
        (tests / name).write_text("")
    assert find_locustfiles("tests") == [str(tests / "a.py"), str(tests / "sub" / "b.py")]
    assert find_locustfiles("locustfile, tests/a.py") == [
        str(project / "locustfile.py"),
        str(tests / "a.py"),
    ]
    (project / "empty").mkdir()
    with pytest.raises(OptionsError, match="any locustfile in directory 'empty'"):
        find_locustfiles("empty")
    o = parse(["-f", "locustfile.py,tests"])
    assert len(o.locustfiles) == 3


def test_resolve_processes() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert resolve_processes(None) == 1
    assert resolve_processes(3) == 3
    assert resolve_processes(-1) == cores >= 1
    for bad in (0, -2):
        with pytest.raises(OptionsError):
            resolve_processes(bad)


# --- the keywords of Locust's add_argument -------------------------------------------------


def add_locust_example(parser: argparse.ArgumentParser) -> None:
    """The options of Locust's examples/add_command_line_argument.py (2.47), and two more."""
    parser.add_argument("--my-argument", type=str, env_var="LOCUST_MY_ARGUMENT", default="")
    parser.add_argument("--env", choices=["dev", "staging", "prod"], default="dev", help="Env")
    parser.add_argument(
        "--endpoints", choices=["a", "b", "c"], is_multiple=True, default=["a"], help="Endpoints"
    )
    parser.add_argument("--my-ui-invisible-argument", include_in_web_ui=False, default="I am")
    parser.add_argument("--my-ui-password-argument", is_secret=True, default="I am a secret")
    parser.add_argument("--ports", type=int, is_multiple=True, default=8000, is_required=True)
    parser.add_argument("--later", default="still here")  # after every unusual keyword


def test_locust_keywords_are_taken_and_later_options_exist(project: Path) -> None:
    o = parse([], extra_parser_hook=add_locust_example)
    assert (o.my_argument, o.env, o.endpoints, o.later) == ("", "dev", ["a"], "still here")
    assert o.ports == [8000]  # a scalar default of a multiple option is a list of one
    o = parse(["--env", "prod", "--later", "x"], extra_parser_hook=add_locust_example)
    assert (o.env, o.later) == ("prod", "x")
    assert (
        parse([], {"LOCUST_MY_ARGUMENT": "e"}, extra_parser_hook=add_locust_example).my_argument
        == "e"
    )


def test_a_multiple_option_repeats_and_replaces_its_default(project: Path) -> None:
    argv = ["--endpoints", "b", "--endpoints", "c", "--ports", "1", "--ports", "2"]
    o = parse(argv, extra_parser_hook=add_locust_example)
    assert (o.endpoints, o.ports) == (["b", "c"], [1, 2])
    assert parse(["--endpoints", "c"], extra_parser_hook=add_locust_example).endpoints == ["c"]
    # from the environment and config files too: a comma-separated or bracketed list
    env = {"LCORE_ENDPOINTS": "b,c", "LCORE_PORTS": "[3, 4]"}
    o = parse([], env, extra_parser_hook=add_locust_example)
    assert (o.endpoints, o.ports) == (["b", "c"], [3, 4])
    (project / "lcore.conf").write_text("endpoints = [a, c]\n")
    assert parse([], extra_parser_hook=add_locust_example).endpoints == ["a", "c"]
    with pytest.raises(OptionsError, match="argument --endpoints: invalid choice: 'd'"):
        parse(["--endpoints", "b", "--endpoints", "d"], extra_parser_hook=add_locust_example)
    with pytest.raises(OptionsError, match="--ports: invalid int value: 'x'"):
        parse([], {"LCORE_PORTS": "1,x"}, extra_parser_hook=add_locust_example)


def test_web_ui_options_describe_what_the_status_page_renders(project: Path) -> None:
    from lcore.launcher.options import web_ui_options

    o = parse(["--my-ui-password-argument", "hunter2"], extra_parser_hook=add_locust_example)
    shown = {c.dest: c for c in web_ui_options(o)}
    assert list(shown) == [
        "my_argument",
        "env",
        "endpoints",
        "my_ui_password_argument",
        "ports",
        "later",
    ]
    assert "my_ui_invisible_argument" in {c.dest for c in o._custom_options}
    assert shown["my_ui_password_argument"].is_secret and not shown["env"].is_secret
    assert getattr(o, shown["my_ui_password_argument"].dest) == "hunter2"  # the value to mask
    assert shown["env"].choices == ("dev", "staging", "prod") and shown["env"].help == "Env"
    assert shown["endpoints"].is_multiple and shown["endpoints"].default == ["a"]
    assert (shown["ports"].kind, shown["ports"].is_required) == ("int", True)
    assert shown["my_argument"].kind == "str"
    flags = {c.dest: c for c in parse([], extra_parser_hook=add_custom)._custom_options}
    assert flags["my_flag"].kind == "bool" and flags["my_int"].kind == "int"


# --- older Locust guides' command lines ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "dest", "value", "today"),
    [
        (["--slave"], "worker", True, "--worker"),
        (["--master", "--expect-slaves", "3"], "expect_workers", 3, "--expect-workers"),
        (["--hatch-rate", "7"], "spawn_rate", 7.0, "--spawn-rate"),
        (
            ["--step-load", "--step-clients", "2", "--step-time", "1m", "-u", "4"],
            "step_users",
            2,
            "--step-users",
        ),
    ],
)
def test_old_option_names_work_with_a_notice(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    dest: str,
    value: object,
    today: str,
) -> None:
    old = next(
        a for a in argv if a in ("--slave", "--expect-slaves", "--hatch-rate", "--step-clients")
    )
    o = parse(argv)
    assert getattr(o, dest) == value
    assert o._notices == [f"{old} is an old Locust option: today's is {today}"]
    assert capsys.readouterr().err == ""  # the strict parse of each process stays quiet
    parse(argv, partial=True)  # the launcher's parse says it, once, on one line
    assert (
        capsys.readouterr().err
        == f"lcore: notice: {old} is an old Locust option: today's is {today}\n"
    )


def test_old_option_names_in_config_files_and_the_environment(project: Path) -> None:
    (project / "lcore.conf").write_text("hatch-rate = 4\nslave = true\n")
    o = parse([])
    assert (o.spawn_rate, o.worker) == (4.0, True)
    assert len(o._notices) == 2
    assert parse(["-r", "9"]).spawn_rate == 9.0  # the command line still wins
    (project / "lcore.conf").unlink()
    assert parse([], {"LOCUST_EXPECT_SLAVES": "2"}).expect_workers == 2


def test_no_web_alone_means_headless_as_in_old_guides(project: Path) -> None:
    o = parse(["--no-web", "-u", "10", "-r", "2", "-t", "30s"])
    assert (o.headless, o.no_web, o.num_users, o.run_time) == (True, True, 10, 30)
    assert o._notices == [
        "--no-web is an old Locust option: today's is --headless "
        "(lcore's --no-web also turns off the status page and /metrics)"
    ]
    assert parse(["--no-web", "-r", "3"]).headless is True
    (project / "lcore.conf").write_text("no-web = true\nusers = 4\n")
    assert parse([]).headless is True  # from any source
    (project / "lcore.conf").unlink()
    # with --autostart, or with nothing to start, it only turns the HTTP server off
    for argv in (["--no-web", "--autostart", "-u", "3"], ["--no-web", "--master"]):
        o = parse(argv)
        assert (o.headless, o.no_web, o._notices) == (False, True, [])


def test_step_load_options(project: Path) -> None:
    o = parse(["--step-load", "--step-users", "5", "--step-time", "1m30s", "-u", "20", "-r", "2"])
    assert (o.step_load, o.step_users, o.step_time, o.num_users, o.spawn_rate) == (
        True,
        5,
        90,
        20,
        2.0,
    )
    assert parse([]).step_load is False


def test_open_model_options(project: Path) -> None:
    options = parse(["--arrival-rate", "250.5", "--max-rps", "100", "-u", "40"])
    assert (options.arrival_rate, options.max_rps, options.num_users) == (250.5, 100.0, 40)
    assert parse([]).arrival_rate is None and parse([]).max_rps is None
    assert parse([], env={"LCORE_ARRIVAL_RATE": "12"}).arrival_rate == 12.0
    for argv, message in (
        (["--arrival-rate", "0"], "--arrival-rate must be a number greater than 0"),
        (["--max-rps", "-5"], "--max-rps must be a number greater than 0"),
        (["--arrival-rate", "inf"], "--arrival-rate must be a number greater than 0"),
        (["--arrival-rate", "10", "-i", "5"], "cannot be combined with -i/--iterations"),
        (["--arrival-rate", "10", "-u", "0"], "a ceiling of at least one user"),
        (["--worker", "--max-rps", "10"], "--max-rps belongs on the master"),
    ):
        with pytest.raises(OptionsError, match=message):
            parse(argv)


def test_an_option_lcore_lacks_in_locusts_config_file_is_a_notice(project: Path) -> None:
    # lcore read no locust.conf before: one with a plugin's or a typo'd key must still start
    (project / "locust.conf").write_text("users = 2\nsome-plugin-option = 1\n")
    o = parse([])
    assert o.num_users == 2
    assert any("'some-plugin-option' is not an option of lcore's" in n for n in o._config_notices)
    (project / "lcore.conf").write_text("some-plugin-option = 1\n")
    with pytest.raises(OptionsError, match="unknown option 'some-plugin-option'"):
        parse([])
