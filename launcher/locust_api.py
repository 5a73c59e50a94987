"""Locust's ``locust.main.main`` and ``locust.argument_parser.parse_options`` / ``get_parser``,
for scripts that start a test from Python (``sys.argv = [...]; main()``) or read options
there, as they did with Locust."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from .main import main as lcore_main
from .options import parse_options as lcore_parse_options
from .parser import OptionsError, build_parser


def main() -> NoReturn:
    """Run lcore with ``sys.argv``, then exit with its code (Locust's ``main()`` never returns)."""
    sys.exit(lcore_main(sys.argv[1:]))


def parse_options(args: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of ``args`` (default: ``sys.argv[1:]``) and of every other source (config
    files, LOCUST_/LCORE_ variables); a bad option exits 2 with a one-line message, as argparse
    does for Locust."""
    try:
        return lcore_parse_options(list(sys.argv[1:] if args is None else args), locate=False)
    except OptionsError as e:
        print(f"lcore: error: {e}", file=sys.stderr)
        sys.exit(2)


def get_parser(default_config_files: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """lcore's option parser (config files are read by ``parse_options``, not by it)."""
    return build_parser()
