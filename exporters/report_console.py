"""Locust-style console tables from the master's ``MergedStats``, returned as text.

``stats_table`` is the periodic table (requests, failures, response times, rates) with the
"Aggregated" line; ``percentiles_table`` the response time percentiles; ``errors_table`` the
error report ("" when there were no failures); ``schedule_report`` says whether users fell
behind their schedule, by how much, with the corrected percentiles next to the uncorrected
ones ("" when every scheduled task started on time and no arrival was dropped). The caller
prints or logs them.

Response times are in milliseconds: whole numbers from 10 ms up, decimals below, so a fast
service does not show a column of zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

from lcore.stats import MergedStats, StatsEntry, report_percentiles

from .report_csv import percentile_headers

__all__ = [
    "errors_table",
    "exceptions_table",
    "percentiles_table",
    "schedule_report",
    "schedule_table",
    "stats_table",
]

TYPE_WIDTH = 8
MIN_NAME_WIDTH = 24
MAX_NAME_WIDTH = 80


def ms(value: float | None, width: int) -> str:
    """A response time for a column of ``width``: ``1234``, ``12``, ``9.87``, ``0.43``."""
    value = value or 0.0
    text = f"{value:.0f}" if value >= 10 or value == 0 else f"{value:.2f}"
    return text.rjust(width)


def _name_width(stats: MergedStats, names_only: bool) -> int:
    longest = max(
        (len(e.name) + (0 if names_only else len(e.method) + 1) for e in stats.entries.values()),
        default=0,
    )
    return max(MIN_NAME_WIDTH, min(MAX_NAME_WIDTH, longest))


def stats_table(stats: MergedStats, user_count: int | None = None, current: bool = True) -> str:
    """Type, Name, # reqs, # fails, Avg, Min, Max, Med, req/s, failures/s; then "Aggregated".

    ``current`` shows the rates over the last seconds, otherwise over the whole run.
    """
    width = _name_width(stats, names_only=True)
    header = (
        f"{'Type':<{TYPE_WIDTH}} {'Name':<{width}} {'# reqs':>7} {'# fails':>12} |"
        f"{'Avg':>7} {'Min':>7} {'Max':>7}{'Med':>7} | {'req/s':>7} {'failures/s':>11}"
    )
    separator = "|".join("-" * n for n in (TYPE_WIDTH, width + 1, 8, 13, 8, 8, 8, 7, 9, 12))
    lines = [header, separator]
    lines += [_stats_line(e, width, current) for e in stats.sorted_entries()]
    lines += [separator, _stats_line(stats.total, width, current)]
    if user_count is not None:
        lines.append(f"Users: {user_count}")
    return "\n".join(lines)


def _stats_line(e: StatsEntry, width: int, current: bool) -> str:
    rps = e.current_rps if current else e.total_rps
    fails = e.current_fail_per_sec if current else e.total_fail_per_sec
    failures = f"{e.num_failures}({e.fail_ratio * 100:.2f}%)"
    return (
        f"{e.method:<{TYPE_WIDTH}} {e.name:<{width}} {e.num_requests:>7} {failures:>12} |"
        f"{ms(e.avg_response_time, 7)} {ms(e.min_response_time, 7)} {ms(e.max_response_time, 7)}"
        f"{ms(e.median_response_time, 7)} | {rps:>7.2f} {fails:>11.2f}"
    )


def percentiles_table(stats: MergedStats, percentiles: Sequence[float] | None = None) -> str:
    """Response time percentiles (ms) of every entry with requests, then "Aggregated"."""
    if percentiles is None:
        percentiles = report_percentiles()
    width = _name_width(stats, names_only=True)
    headers = percentile_headers(percentiles)
    lines = [
        "Response time percentiles (ms)",
        f"{'Type':<{TYPE_WIDTH}} {'Name':<{width}} {'# reqs':>8} "
        + " ".join(f"{h:>6}" for h in headers),
    ]
    separator = "|".join(["-" * TYPE_WIDTH, "-" * (width + 1), "-" * 9, *["-" * 6] * len(headers)])
    lines.append(separator)
    for e in stats.sorted_entries():
        if e.num_requests:
            lines.append(_percentile_line(e, width, percentiles))
    lines.append(separator)
    if stats.num_requests:
        lines.append(_percentile_line(stats.total, width, percentiles))
    return "\n".join(lines)


def _percentile_line(e: StatsEntry, width: int, percentiles: Sequence[float]) -> str:
    values = " ".join(ms(v, 6) for v in e.get_response_time_percentiles(percentiles))
    return f"{e.method:<{TYPE_WIDTH}} {e.name:<{width}} {e.num_requests:>8} {values}"


def errors_table(stats: MergedStats) -> str:
    """The error report: occurrences and "METHOD name: error", most frequent first."""
    if not stats.errors:
        return ""
    width = _name_width(stats, names_only=False) + 40
    separator = f"{'-' * 18}|{'-' * width}"
    lines = ["Error report", f"{'# occurrences':<18} {'Error'}", separator]
    for error in sorted(stats.errors.values(), key=lambda e: (-e.occurrences, e.to_name())):
        lines.append(f"{error.occurrences:<18} {error.to_name()}")
    lines.append(separator)
    return "\n".join(lines)


def exceptions_table(stats: MergedStats) -> str:
    """Task exceptions: count, message, and the workers they came from ("" when none)."""
    if not stats.exceptions:
        return ""
    lines = ["Exceptions", f"{'# occurrences':<18} {'Message':<60} Nodes", "-" * 100]
    for record in sorted(stats.exceptions.values(), key=lambda r: -r.count):
        lines.append(f"{record.count:<18} {record.msg:<60} {', '.join(sorted(record.nodes))}")
    lines.append("-" * 100)
    return "\n".join(lines)


def schedule_table(stats: MergedStats) -> str:
    """Per user class with a schedule: scheduled task starts, how many were late (by at least
    ``schedule_lag.ON_TIME_US``), lag percentiles, slots paced users missed, arrivals the open
    model dropped ("" when no class has any)."""
    classes = sorted(set(stats.schedules) | set(stats.dropped_arrivals))
    if not classes:
        return ""
    from lcore.schedule_lag import ON_TIME_US

    width = max(MIN_NAME_WIDTH, *(len(c) for c in classes))
    lines = [
        f"{'User class':<{width}} {'starts':>9} {'late':>9} {'lag p50':>8} {'lag p99':>8} "
        f"{'max lag':>8} {'missed':>9} {'dropped':>9}",
    ]
    for name in classes:
        tally = stats.schedules.get(name)
        dropped = stats.dropped_arrivals.get(name, 0)
        if tally is None or not tally.starts:
            lines.append(
                f"{name:<{width}} {0:>9} {0:>9} {'':>8} {'':>8} {'':>8} {0:>9} {dropped:>9}"
            )
            continue
        lag = tally.lag
        late = lag.count - lag.count_at_or_below([ON_TIME_US - 1])[0]
        p50, p99 = (v / 1000 for v in lag.quantiles((0.5, 0.99)))
        lines.append(
            f"{name:<{width}} {tally.starts:>9} {late:>9} {ms(p50, 8)} {ms(p99, 8)} "
            f"{ms(lag.max / 1000, 8)} {tally.missed:>9} {dropped:>9}"
        )
    return "\n".join(lines)


def schedule_report(stats: MergedStats, percentiles: Sequence[float] | None = None) -> str:
    """The end-of-test note on schedules: "" when nothing fell behind and nothing was dropped;
    else what fell behind and by how much, and each entry's percentiles from the send and
    from the intended start (corrected) one above the other."""
    dropped = sum(stats.dropped_arrivals.values())
    if not stats.fell_behind and not dropped:
        return ""
    lines = []
    if stats.fell_behind:
        worst = max((t.lag.max for t in stats.schedules.values()), default=0) / 1000
        missed = sum(t.missed for t in stats.schedules.values())
        lines.append(
            f"Users fell behind their schedule, by up to {ms(worst, 0).strip()} ms"
            + (f", {missed} slots missed" if missed else "")
            + ": the corrected response times count from when each request should have"
            " started (coordinated omission)"
        )
    if dropped:
        lines.append(
            f"{dropped} arrivals dropped: due while every user up to the ceiling (-u) was busy"
        )
    table = schedule_table(stats)
    if table:
        lines.append(table)
    if stats.fell_behind:
        lines.append(_corrected_percentiles(stats, percentiles))
    return "\n".join(lines)


def _corrected_percentiles(stats: MergedStats, percentiles: Sequence[float] | None) -> str:
    if percentiles is None:
        percentiles = report_percentiles()
    width = _name_width(stats, names_only=True) + len(" (corrected)")
    headers = percentile_headers(percentiles)
    lines = [
        "Response time percentiles (ms), from the send and from the intended start (corrected)",
        f"{'Type':<{TYPE_WIDTH}} {'Name':<{width}} {'# reqs':>8} "
        + " ".join(f"{h:>6}" for h in headers),
    ]
    separator = "|".join(["-" * TYPE_WIDTH, "-" * (width + 1), "-" * 9, *["-" * 6] * len(headers)])
    lines.append(separator)
    rows = [e for e in stats.sorted_entries() if e.num_requests]
    if stats.num_requests:
        rows.append(stats.total)
    for e in rows:
        if e is stats.total:
            lines.append(separator)
        sent = " ".join(ms(v / 1000, 6) for v in e.histogram.quantiles(percentiles))
        lines.append(f"{e.method:<{TYPE_WIDTH}} {e.name:<{width}} {e.num_requests:>8} {sent}")
        corrected = e.corrected_histogram
        values = " ".join(ms(v / 1000, 6) for v in corrected.quantiles(percentiles))
        label = f"{e.name} (corrected)"
        lines.append(f"{e.method:<{TYPE_WIDTH}} {label:<{width}} {corrected.count:>8} {values}")
    return "\n".join(lines)
