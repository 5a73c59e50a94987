"""CSV reports with Locust's file names and column names, from the master's ``MergedStats``.

``write_csv_files(stats, PREFIX)`` (re)writes PREFIX_stats.csv, PREFIX_failures.csv and
PREFIX_exceptions.csv; a ``StatsHistoryWriter`` appends rows to PREFIX_stats_history.csv each
time it is called. Response times are in milliseconds, written with up to three decimals
(whole numbers without any), so sub-millisecond figures survive; Locust writes whole ones.
In the history file the requests/s, failures/s and percentile columns cover the last seconds
(the stats' window), the "Total ..." columns the whole run.

Locust's columns keep Locust's meaning: response times from when each request was sent. After
them come ``Corrected 50%`` ... ``Corrected 100%``: the same percentiles of the response
times from each request's intended start (coordinated omission: see ``lcore.schedule_lag``),
equal to the uncorrected ones for users without a schedule. In the history they cover the
window, as the uncorrected percentiles there do.

Text that came from the test (request names, methods, error messages, tracebacks) goes through
``cell``: a value a spreadsheet would run as a formula gets a leading ``'`` (see ``cell``).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from lcore.stats import MergedStats, StatsEntry, report_percentiles

__all__ = [
    "EXCEPTIONS_COLUMNS",
    "corrected_headers",
    "FAILURES_COLUMNS",
    "StatsHistoryWriter",
    "cell",
    "exceptions_rows",
    "failures_rows",
    "history_columns",
    "percentile_headers",
    "stats_columns",
    "stats_rows",
    "write_csv_files",
]

FAILURES_COLUMNS = ["Method", "Name", "Error", "Occurrences", "First Seen", "Last Seen"]
EXCEPTIONS_COLUMNS = ["Count", "Message", "Traceback", "Nodes"]


def percentile_headers(percentiles: Sequence[float] | None = None) -> list[str]:
    """``["50%", "66%", ..., "99.9%", "99.99%", "100%"]``, spelled as Locust spells them."""
    if percentiles is None:
        percentiles = report_percentiles()
    headers = []
    for p in percentiles:
        value = p * 100
        headers.append(f"{int(value) if value.is_integer() else round(value, 6)}%")
    return headers


def corrected_headers(percentiles: Sequence[float] | None = None) -> list[str]:
    """``["Corrected 50%", ..., "Corrected 100%"]``: the columns appended to Locust's."""
    return [f"Corrected {header}" for header in percentile_headers(percentiles)]


def stats_columns(percentiles: Sequence[float] | None = None) -> list[str]:
    if percentiles is None:
        percentiles = report_percentiles()
    return [
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Average Content Size",
        "Requests/s",
        "Failures/s",
        *percentile_headers(percentiles),
        *corrected_headers(percentiles),
    ]


def history_columns(percentiles: Sequence[float] | None = None) -> list[str]:
    if percentiles is None:
        percentiles = report_percentiles()
    return [
        "Timestamp",
        "User Count",
        "Type",
        "Name",
        "Requests/s",
        "Failures/s",
        *percentile_headers(percentiles),
        "Total Request Count",
        "Total Failure Count",
        "Total Median Response Time",
        "Total Average Response Time",
        "Total Min Response Time",
        "Total Max Response Time",
        "Total Average Content Size",
        *corrected_headers(percentiles),
    ]


def number(value: float | None) -> str:
    """At most three decimals, none for a whole number: ``147``, ``0.437``, ``12.5``."""
    if value is None:
        return "0"
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """``value`` made safe to open in a spreadsheet: text starting with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return gets a leading ``'`` (OWASP's advice for CSV injection),
    so ``=HYPERLINK(...)`` in a request name is shown, not run. Left alone because no
    spreadsheet reads them as a formula: a lone ``-`` or ``+`` (a name like Locust's "-") and a
    plain signed number such as ``-1``. Not text: returned unchanged."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_STARTS):
        return value
    if value[0] in "+-":
        if len(value) == 1:
            return value
        try:
            float(value)
            return value
        except ValueError:
            pass
    return "'" + value


def utc(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows_with_total(stats: MergedStats) -> list[StatsEntry]:
    return [*stats.sorted_entries(), stats.total]


def _percentiles(
    entry: StatsEntry, percentiles: Sequence[float], current: bool, corrected: bool = False
) -> list[str]:
    if not entry.num_requests:
        return ["N/A"] * len(percentiles)
    if corrected:
        histogram = entry.current_corrected_histogram() if current else entry.corrected_histogram
    else:
        histogram = entry.current_histogram() if current else entry.histogram
    return [number(v / 1000) for v in histogram.quantiles(percentiles)]


def stats_rows(stats: MergedStats, percentiles: Sequence[float] | None = None) -> list[list[Any]]:
    """The rows of PREFIX_stats.csv after its header: every entry, then "Aggregated"."""
    if percentiles is None:
        percentiles = report_percentiles()
    rows = []
    for e in _rows_with_total(stats):
        rows.append(
            [
                cell(e.method),
                cell(e.name),
                e.num_requests,
                e.num_failures,
                number(e.median_response_time),
                number(e.avg_response_time),
                number(e.min_response_time or 0),
                number(e.max_response_time),
                number(e.avg_content_length),
                number(e.total_rps),
                number(e.total_fail_per_sec),
                *_percentiles(e, percentiles, current=False),
                *_percentiles(e, percentiles, current=False, corrected=True),
            ]
        )
    return rows


def failures_rows(stats: MergedStats) -> list[list[Any]]:
    return [
        [
            cell(e.method),
            cell(e.name),
            cell(e.text),
            e.occurrences,
            utc(e.first_seen),
            utc(e.last_seen),
        ]
        for _, e in sorted(stats.errors.items())
    ]


def exceptions_rows(stats: MergedStats) -> list[list[Any]]:
    records = sorted(stats.exceptions.values(), key=lambda r: -r.count)
    return [
        [r.count, cell(r.msg), cell(r.traceback), cell(", ".join(sorted(r.nodes)))] for r in records
    ]


def _write(path: str, header: list[str], rows: Iterable[list[Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_csv_files(
    stats: MergedStats, prefix: str, percentiles: Sequence[float] | None = None
) -> None:
    """Write PREFIX_stats.csv, PREFIX_failures.csv and PREFIX_exceptions.csv afresh."""
    if percentiles is None:
        percentiles = report_percentiles()
    _write(f"{prefix}_stats.csv", stats_columns(percentiles), stats_rows(stats, percentiles))
    _write(f"{prefix}_failures.csv", FAILURES_COLUMNS, failures_rows(stats))
    _write(f"{prefix}_exceptions.csv", EXCEPTIONS_COLUMNS, exceptions_rows(stats))


class StatsHistoryWriter:
    """Appends rows to PREFIX_stats_history.csv: the "Aggregated" row on every ``write``,
    and with ``full_history`` a row per entry before it (Locust's ``--csv-full-history``).

    The header is written when the file is opened; each ``write`` is flushed.
    """

    def __init__(
        self,
        prefix: str,
        full_history: bool = False,
        percentiles: Sequence[float] | None = None,
    ) -> None:
        if percentiles is None:
            percentiles = report_percentiles()
        self.path = f"{prefix}_stats_history.csv"
        self.full_history = full_history
        self.percentiles = tuple(percentiles)
        self._file: TextIO | None = open(self.path, "w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(history_columns(self.percentiles))
        self._file.flush()

    def write(self, stats: MergedStats, user_count: int = 0, now: float | None = None) -> None:
        if self._file is None:
            raise ValueError("write to a closed StatsHistoryWriter")
        timestamp = int(time.time() if now is None else now)
        entries = stats.sorted_entries() if self.full_history else []
        for e in [*entries, stats.total]:
            self._writer.writerow(
                [
                    timestamp,
                    user_count,
                    cell(e.method),
                    cell(e.name),
                    number(e.current_rps),
                    number(e.current_fail_per_sec),
                    *_percentiles(e, self.percentiles, current=True),
                    e.num_requests,
                    e.num_failures,
                    number(e.median_response_time),
                    number(e.avg_response_time),
                    number(e.min_response_time or 0),
                    number(e.max_response_time),
                    number(e.avg_content_length),
                    *_percentiles(e, self.percentiles, current=True, corrected=True),
                ]
            )
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> StatsHistoryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
