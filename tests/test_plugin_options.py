"""A locustfile or plugin that declares an option lcore already has (locust-plugins' -i/--iterations)
gets lcore's: the option keeps one meaning, and lcore's own handling of it (issue 13)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lcore.launcher.options import parse_options


def parse(argv: list[str], hook) -> argparse.Namespace:
    return parse_options(argv, {"HOME": str(Path.cwd())}, extra_parser_hook=hook)


def like_locust_plugins(parser: argparse.ArgumentParser) -> None:
    other = parser.add_argument_group("locust-plugins - Extras")
    action = other.add_argument(
        "-i", "--iterations", type=str, default="plugin", env_var="LOCUST_ITERATIONS", help="theirs"
    )
    assert action.option_strings == ["-i", "--iterations"] and action.type is int  # lcore's
    other.add_argument("--ips", type=float, default=0)


def test_an_option_lcore_has_stays_lcores(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.py").write_text("")
    options = parse(["-f", "x.py", "-i", "10", "--ips", "2"], like_locust_plugins)
    assert (options.iterations, options.ips) == (10, 2.0)
    assert parse(["-f", "x.py"], like_locust_plugins).iterations == 0  # lcore's default
    assert [c.flag for c in options._custom_options] == ["--ips"]  # not a locustfile option


def test_partly_taken_flags_are_still_a_conflict(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    def clash(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-i", "--my-iterations", type=int)

    with pytest.raises(argparse.ArgumentError, match="conflicting option string"):
        parse(["-f", "x.py"], clash)
