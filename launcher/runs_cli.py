"""``lcore runs``: the stored runs (list, show, export, delete, compare).

    lcore runs list [--label KEY=VALUE]... [--last N] [--json]
    lcore runs show ID [--json]
    lcore runs export ID (--csv PREFIX | --html FILE | --json FILE)
    lcore runs delete ID
    lcore runs compare A B [--tolerance PCT] [--alpha P] [--json]   (A, B: ids, last, label:K=V)

Every subcommand takes ``--results-db PATH|URL`` (default: ``$LCORE_RESULTS_DB``, else the
default SQLite file). An id may be abbreviated to any unique prefix. Exit codes: 0, 1 for an
error (one line on stderr), 4 when ``compare`` finds a regression (as a failed threshold).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from lcore.exporters import results_db

__all__ = ["runs_main"]

REGRESSION_EXIT_CODE = 4  # the same as a failed --threshold


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # only a parent: its error() is never called
    # SUPPRESS: given before or after the subcommand, neither place's default hides the other
    common.add_argument(
        "--results-db", metavar="PATH|URL", default=argparse.SUPPRESS, help="The results store (default: $LCORE_RESULTS_DB, "
        f"else {results_db.default_path()})",
    )  # fmt: skip
    parser = _Parser(prog="lcore runs", description="The runs saved in the results store.", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    p = sub.add_parser("list", parents=[common], help="List the runs, oldest first.")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="Only runs with this label (repeatable).")
    p.add_argument("--last", type=int, metavar="N", help="Only the N most recent runs.")
    p.add_argument("--json", action="store_true", help="A JSON list of runs.")
    p = sub.add_parser("show", parents=[common], help="One run: its details and statistics.")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="Everything stored, as JSON.")
    p = sub.add_parser("export", parents=[common], help="Reports regenerated from the stored histograms.")
    p.add_argument("id")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--csv", metavar="PREFIX", help="PREFIX_stats.csv, _failures.csv, _exceptions.csv, _stats_history.csv")
    what.add_argument("--html", metavar="FILE", help="The HTML report.")
    what.add_argument("--json", metavar="FILE", help="The --json-file document.")
    p = sub.add_parser("delete", parents=[common], help="Delete a run.")
    p.add_argument("id")
    p = sub.add_parser("compare", parents=[common], help="Compare run B with run A, per endpoint.")
    p.add_argument("a", metavar="A", help="A run id, or last, or label:KEY=VALUE (the latest finished run with it)")
    p.add_argument("b", metavar="B", help="The same")
    p.add_argument("--tolerance", type=float, default=10.0, metavar="PCT",
                   help="A significant change larger than this (%%) is a regression: exit 4. Default: 10.")  # fmt: skip
    p.add_argument("--alpha", type=float, default=0.01, metavar="P",
                   help="Significance level of each test. Default: 0.01.")  # fmt: skip
    p.add_argument("--json", action="store_true", help="The comparison as JSON.")
    return parser


def _error(message: str) -> int:
    sys.stderr.write(f"lcore: error: {message}\n")
    return 1


def runs_main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except _UsageError as e:
        return _error(f"{e} (see 'lcore runs --help')")
    where = getattr(args, "results_db", None) or os.environ.get(results_db.DEFAULT_ENV) or results_db.default_path()
    if not results_db.is_postgres(where) and not os.path.exists(os.path.expanduser(where)):
        return _error(f"no results store at {where} (no run saved yet, or see --results-db)")
    try:
        with results_db.open_store(where) as store:
            return _COMMANDS[args.command](store, args)
    except results_db.StoreError as e:
        return _error(str(e))
    except (ValueError, OSError) as e:
        return _error(" ".join(str(e).split()))


# -- the commands --------------------------------------------------------------------------


def _list(store: results_db.Store, args: argparse.Namespace) -> int:
    from lcore.exporters.results_record import parse_label

    labels = dict(parse_label(text) for text in args.label)
    if args.last is not None and args.last < 1:
        raise ValueError(f"--last must be at least 1, not {args.last}")
    runs = store.runs(labels, last=args.last)
    if args.json:
        print(json.dumps([_run_json(r) for r in runs], indent=2))
        return 0
    if not runs:
        print("No runs" + (" with these labels" if labels else "") + f" in {store.where}")
        return 0
    head = ["ID", "Started", "Duration", "Status", "Exit", "Users", "Requests", "Fail %", "RPS", "p95 ms", "Labels"]
    rows = []
    for r in runs:
        s = r.get("summary") or {}
        rows.append([
            r["id"], _when(r["started"]), _duration(r), _status(r),
            "" if r["exit_code"] is None else str(r["exit_code"]), str(r["users"] or 0),
            f"{s.get('requests', 0):,}", f"{100 * s.get('fail_ratio', 0):.2f}", f"{s.get('rps', 0):.1f}",
            f"{s.get('p95', 0):g}", " ".join(f"{k}={v}" for k, v in sorted(r["labels"].items())),
        ])  # fmt: skip
    print(_table(head, rows))
    return 0


def _run_json(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "labels", "started", "ended", "status", "exit_code", "host", "target", "locustfile",
            "digest", "version", "git_commit", "users", "user_classes", "summary")  # fmt: skip
    out = {k: r.get(k) for k in keys}
    out["status"] = _status(r)
    return out


def _status(r: dict[str, Any]) -> str:
    from lcore.exporters.results_writer import CHECKPOINT_INTERVAL

    if r["status"] != "running":
        return str(r["status"])
    pid = (r.get("span") or {}).get("pid")
    if r.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return "interrupted"  # its master is gone: killed before it could save the end
    if time.time() - (r.get("updated") or 0) > 10 * CHECKPOINT_INTERVAL:
        return "interrupted"  # its master stopped checkpointing: killed, or its machine died
    return "running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not reaped yet: init may be slow to) is no master either
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def _show(store: results_db.Store, args: argparse.Namespace) -> int:
    from lcore.exporters import report_console
    from lcore.exporters.results_record import restore_stats

    run = store.run(args.id)
    if args.json:
        print(json.dumps({**_run_json(run), "options": run.get("options"), "percentiles": run.get("percentiles"),
                          "thresholds": run.get("thresholds"), "results": run["results"],
                          "history": run["history"]}, indent=2))  # fmt: skip
        return 0
    stats = restore_stats(run["results"])
    classes = ", ".join(f"{k}: {v}" for k, v in sorted((run.get("user_classes") or {}).items()))
    info = [
        ("Run", run["id"]),
        ("Status", _status(run) + ("" if run["exit_code"] is None else f", exit code {run['exit_code']}")),
        ("Started", _when(run["started"])),
        ("Duration", _duration(run)),
        ("Labels", " ".join(f"{k}={v}" for k, v in sorted(run["labels"].items())) or "-"),
        ("Target", run.get("target") or "-"),
        ("Locustfile", f"{run.get('locustfile') or '-'} (digest {str(run.get('digest') or '')[:12]})"),
        ("Git commit", run.get("git_commit") or "-"),
        ("Host", f"{run.get('host') or '-'}, lcore {run.get('version') or '?'}"),
        ("Users", f"{run.get('users') or 0} ({classes or '-'})"),
    ]
    width = max(len(k) for k, _ in info)
    print("\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in info))
    print()
    print(report_console.stats_table(stats, None, current=False))
    print(report_console.percentiles_table(stats, run.get("percentiles")))
    errors = report_console.errors_table(stats)
    if errors:
        print(errors)
    for t in run.get("thresholds") or []:
        verdict = "passed" if t["passed"] else "failed"
        base = f", baseline {t['baseline']:g} (run {t['baseline_run']})" if t.get("baseline") is not None else ""
        measured = "no requests" if t["measured"] is None else f"measured {t['measured']:g}"
        print(f"Threshold {verdict}: {t['threshold']} ({measured}{base})")
    return 0


def _export(store: results_db.Store, args: argparse.Namespace) -> int:
    from lcore.exporters import report_csv, report_json
    from lcore.exporters.results_record import restore_stats

    run = store.run(args.id)
    stats = restore_stats(run["results"])
    percentiles = run.get("percentiles") or None
    if args.csv:
        report_csv.write_csv_files(stats, args.csv, percentiles)
        _write_history_csv(run, args.csv, percentiles)
        print(f"Wrote {args.csv}_stats.csv, {args.csv}_failures.csv, {args.csv}_exceptions.csv, {args.csv}_stats_history.csv")
    elif args.html:
        from lcore.exporters.report_html import write_html_report
        from lcore.exporters.results_trend import stored_trend

        stats.history = list(run["history"])
        trend_runs = int((run.get("options") or {}).get("report_trend") or 10)
        write_html_report(_StoredRun(run, stats), args.html, trend=stored_trend(store, run, trend_runs))
        print(f"Wrote {args.html}")
    else:
        document: Any = report_json.stats_to_json(stats)
        if run.get("thresholds"):  # the run's own document's shape (master_main.final_reports)
            document = {
                "stats": document,
                "thresholds": run["thresholds"],
                "schedules": report_json.schedules_to_json(stats),
            }
        path = args.json if args.json.endswith(".json") else args.json + ".json"
        with open(path, "w") as f:
            json.dump(document, f, indent=4)
        print(f"Wrote {path}")
    return 0


def _write_history_csv(run: dict[str, Any], prefix: str, percentiles: Sequence[float] | None) -> None:
    """PREFIX_stats_history.csv's Aggregated rows, from the stored per-second points (taken
    by the store's sampler, so at its own instants: the same columns, not the same bytes)."""
    import csv

    from lcore.exporters.report_csv import history_columns, number
    from lcore.stats import report_percentiles

    qs = list(percentiles or report_percentiles())
    with open(f"{prefix}_stats_history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(history_columns(qs))
        for p in run["history"]:
            values = [p.get(f"response_time_percentile_{q}") for q in qs]
            writer.writerow([
                int(p["time"]), p.get("user_count", 0), "", "Aggregated",
                number(p.get("current_rps")), number(p.get("current_fail_per_sec")),
                *["N/A" if v is None or not p.get("requests") else number(v) for v in values],
                p.get("requests", 0), p.get("failures", 0),
                *[number(p.get(k)) for k in ("total_median", "total_avg", "total_min", "total_max",
                                             "total_avg_content_length")],
            ])  # fmt: skip


class _StoredRun:
    """What the HTML report reads of a runtime, for a stored run."""

    def __init__(self, run: dict[str, Any], stats: Any) -> None:
        self.stats_merged = stats
        self.start_time = run["started"]
        self.host = run.get("target") or ""
        self.user_count = run.get("users") or 0
        self.workers: dict[str, Any] = {}
        self.lost_workers: list[Any] = []
        self.environment = argparse.Namespace(host=self.host, locustfile=run.get("locustfile") or "", profile=None)


def _delete(store: results_db.Store, args: argparse.Namespace) -> int:
    print(f"Deleted run {store.delete(args.id)}")
    return 0


def _compare(store: results_db.Store, args: argparse.Namespace) -> int:
    from lcore.exporters import results_compare
    from lcore.exporters.results_record import restore_stats

    if not 0 < args.alpha < 1:
        raise ValueError(f"--alpha must be between 0 and 1, not {args.alpha}")
    if args.tolerance < 0:
        raise ValueError(f"--tolerance must not be negative, not {args.tolerance}")
    a, b = _pick(store, args.a), _pick(store, args.b)
    percentiles = list(b.get("percentiles") or a.get("percentiles") or [0.5, 0.95, 0.99])
    comparison = results_compare.compare_stats(
        a["id"], restore_stats(a["results"]), b["id"], restore_stats(b["results"]),
        percentiles, alpha=args.alpha, tolerance=args.tolerance,
    )  # fmt: skip
    if args.json:
        print(json.dumps(results_compare.to_json(comparison), indent=2, allow_nan=False, default=str))
    else:
        print(render_comparison(comparison))
    return REGRESSION_EXIT_CODE if comparison.regressions else 0


def _pick(store: results_db.Store, spec: str) -> dict[str, Any]:
    """A run id (or prefix), or as --baseline names one: ``last``, ``label:KEY=VALUE``."""
    if spec == "last" or spec.startswith("label:"):
        found = store.find_baseline(spec)
        if found is None:
            raise results_db.RunNotFound(f"no finished run matches {spec!r} in {store.where}")
        return found
    return store.run(spec)


def render_comparison(c: Any) -> str:
    from lcore.exporters.report_csv import percentile_headers

    head = ["Type", "Name", "req/s", "fails", *percentile_headers(c.percentiles), "p-value", "Verdict"]
    rows = []
    for r in c.rows:
        cells = [r.method, r.name, _delta(r.a["rps"], r.b["rps"], "{:.1f}"),
                 f"{r.a['failures']}>{r.b['failures']}"]  # fmt: skip
        for va, vb in zip(r.a["percentiles"], r.b["percentiles"], strict=True):
            cells.append(_delta(va, vb, "{:g}"))
        cells.append("-" if r.times is None else f"{r.times.p_value:.2g}")
        verdict = r.verdict + (f"; REGRESSION ({'; '.join(r.regressions)})" if r.regressions else "")
        cells.append(verdict)
        rows.append(cells)
    lines = [
        f"Run B {c.b_id} compared with run A {c.a_id} (response times: Mann-Whitney U test on the "
        f"histograms; rates: Poisson z-test; failures: two-proportion z-test; alpha {c.alpha:g}, "
        f"tolerance {c.tolerance:g}%). Each cell: A>B and the change.",
        _table(head, rows),
    ]
    regressions = c.regressions
    lines.append(
        f"{len(regressions)} regression(s) beyond {c.tolerance:g}%: " + ", ".join(r.label for r in regressions)
        if regressions
        else f"No regression beyond {c.tolerance:g}%"
    )
    return "\n".join(lines)


def _delta(a: float | None, b: float | None, fmt: str) -> str:
    """``0.23>0.54 +138%``: A's figure, B's, and the change."""
    shown_a = "-" if a is None else fmt.format(round(a, 3))
    shown_b = "-" if b is None else fmt.format(round(b, 3))
    change = f" {(b / a - 1) * 100:+.0f}%" if a and b is not None else ""
    return f"{shown_a}>{shown_b}{change}"


_COMMANDS = {"list": _list, "show": _show, "export": _export, "delete": _delete, "compare": _compare}


# -- formatting ----------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _duration(r: dict[str, Any]) -> str:
    end = r.get("ended") or r.get("updated")
    if not end:
        return "-"
    seconds = int(round(end - r["started"]))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)
