"""The results store's options (``--results-db``, ``--no-results-db``, ``--baseline``,
``--report-trend``) and their checks; the parser and ``validate`` call these. The run's
labels are ``--label`` (the outputs' option, launcher/parser.py): stored with the run too."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_results_options", "results_db_of", "validate_results_options"]

DEFAULT_TREND_RUNS = 10


def add_results_options(parser: Any) -> None:
    group = parser.add_argument_group("Run history and baselines")
    group.add_argument(
        "--results-db",
        metavar="PATH|URL",
        help="Where every run is saved: an SQLite file, or postgresql://user@host/db for a "
        "shared PostgreSQL. Default: $XDG_DATA_HOME/lcore/results.db "
        "(~/.local/share/lcore/results.db). See 'lcore runs'.",
    )
    group.add_argument(
        "--no-results-db", action="store_true", help="Do not save this run in the results store."
    )
    group.add_argument(
        "--baseline",
        metavar="last|RUN_ID|label:KEY=VALUE",
        help="The stored run that thresholds like 'p95<baseline+10%%' compare with: the latest "
        "finished run, a run id, or the latest finished run with that label. Default: last.",
    )
    group.add_argument(
        "--report-trend",
        type=int,
        default=DEFAULT_TREND_RUNS,
        metavar="N",
        help="The HTML report shows the trend of the last N stored runs with this run's "
        f"labels (0: none). Default: {DEFAULT_TREND_RUNS}.",
    )


def results_db_of(options: Any) -> str | None:
    """The store this run writes to, or None with --no-results-db."""
    from lcore.exporters.results_db import store_location

    return store_location(options)


def validate_results_options(options: argparse.Namespace) -> str | None:
    """A one-line reason the results options cannot work together, or None."""
    get = options.__dict__.get
    relative = [t for t in get("thresholds") or () if getattr(t, "relative", None) is not None]
    baseline = get("baseline")
    if get("no_results_db"):
        if baseline:
            return "--baseline reads the results store: it cannot be combined with --no-results-db"
        if relative:
            return f"threshold {relative[0].text!r} compares with a stored run: it needs the results store (drop --no-results-db)"
    if baseline is not None:
        text = baseline.strip()
        if not text:
            return "--baseline needs last, a run id or label:KEY=VALUE"
        if text.startswith("label:"):
            key, sep, _ = text[len("label:") :].partition("=")
            if not sep or not key.strip():
                return f"--baseline {text!r}: write label:KEY=VALUE, e.g. label:branch=main"
    if get("report_trend", 0) < 0:
        return f"--report-trend must be 0 or more, not {get('report_trend')}"
    where = get("results_db") or ""
    if not get("no_results_db") and not get("worker"):
        from lcore.exporters.results_db import is_postgres

        if is_postgres(where):
            try:
                import psycopg  # noqa: F401
            except ImportError:
                return "--results-db postgresql://... needs the psycopg package: pip install 'lcore[postgres]'"
    return None
