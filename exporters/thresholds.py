"""Pass/fail thresholds for CI: ``--threshold "p95<300ms"`` checked against the master's stats.

An expression is ``[METHOD] [NAME] METRIC OP VALUE``::

    p95<300ms            fail_ratio<0.01 (or <1%)     rps>500          requests>=1000
    GET /api p99<1s      /login avg<200               max<=2s          failures==0

METRIC is ``pNN`` (any percentile: p50, p99.9), ``median``, ``avg``, ``min``, ``max`` (times:
a plain number is ms, or give ``ms``, ``s``, ``m``), ``fail_ratio``, ``rps``, ``fail_rps``,
``requests`` or ``failures``. Without METHOD and NAME the "Aggregated" row is measured; NAME
alone selects every method of that name. Pure functions over a ``MergedStats``: no I/O.

Coordinated omission (see ``lcore.schedule_lag``): ``corrected_`` before a time metric
(``corrected_p99<500ms``, ``corrected_avg``, ``corrected_max``...) measures the response
times from each request's intended start. Per user class (NAME is then a user class; none:
every class together)::

    dropped_arrivals==0     arrivals the open model could not start (no free user under -u)
    dropped_ratio<1%        of the arrivals due, the share dropped
    max_lag<100ms           how far behind its schedule the latest-starting task started

VALUE may be relative to a baseline run (``--baseline``): ``baseline``, ``baseline+10%``,
``baseline-5%`` (a percentage of the baseline's figure) or ``baseline+50ms`` (in the metric's
unit)::

    p95<baseline+10%     rps>baseline-5%     GET /api avg<=baseline+20ms

``resolve_relative`` turns them into plain thresholds once the baseline's stats are known;
the printed outcome then gives the run's figure and the baseline's.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lcore.histogram import Histogram
from lcore.stats import MergedStats, StatsEntry

__all__ = [
    "ABORT_MIN_REQUESTS",
    "THRESHOLD_EXIT_CODE",
    "Result",
    "Threshold",
    "ThresholdError",
    "breached",
    "evaluate",
    "exit_code",
    "failed",
    "format_value",
    "parse_threshold",
    "resolve_relative",
    "skipped_lines",
    "report_lines",
    "results_to_json",
]

THRESHOLD_EXIT_CODE = 4
"""Exit status when a threshold failed: distinct from --exit-code-on-error's default (1),
usage errors (2) and deaths by signal (128 + N)."""

ABORT_MIN_REQUESTS = 100
"""With --threshold-abort, a percentile, average or ratio is only trusted to stop the test once
its row has this many requests: the first few samples (cold caches, connection set-up) are
not the test's verdict."""

_TIME, _RATIO, _RATE, _COUNT = "time", "ratio", "rate", "count"
_UNITS_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0}

# metric name -> kind; percentiles (pNN) are handled apart
_METRICS = {
    "avg": _TIME,
    "median": _TIME,
    "min": _TIME,
    "max": _TIME,
    "fail_ratio": _RATIO,
    "rps": _RATE,
    "fail_rps": _RATE,
    "requests": _COUNT,
    "failures": _COUNT,
}
_ALIASES = {
    "mean": "avg",
    "average": "avg",
    "p50": "median",
    "failure_ratio": "fail_ratio",
    "total_rps": "rps",
    "num_requests": "requests",
    "num_failures": "failures",
}
# figures of user classes' schedules, not of request rows
_CLASS_METRICS = {"dropped_arrivals": _COUNT, "dropped_ratio": _RATIO, "max_lag": _TIME}
_METRICS.update(_CLASS_METRICS)
_CORRECTED = "corrected_"
# How a figure moves as a test goes on: a breach of a bound it moves away from is final.
_NEVER_FALLS = frozenset(
    {"max", "requests", "failures", "corrected_max", "dropped_arrivals", "max_lag"}
)
_NEVER_RISES = frozenset({"min"})

_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
}
_EXPRESSION = re.compile(r"(?P<left>.*?)\s*(?P<op><=|>=|==|<|>)\s*(?P<value>[^<>=]*)", re.S)
_PERCENTILE = re.compile(r"p(\d{1,3}(?:\.\d+)?)")
_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|%)?")
_METHOD_AND_NAME = re.compile(r"([A-Za-z][A-Za-z_-]*)\s+(\S.*)", re.S)
_EXAMPLE = "e.g. 'p95<300ms', 'GET /api p99<1s', 'fail_ratio<0.01', 'rps>500', 'p95<baseline+10%'"
_RELATIVE = re.compile(r"baseline\s*(?:(?P<sign>[+-])\s*(?P<amount>.+))?", re.I)


class ThresholdError(ValueError):
    """A threshold expression that cannot be read; ``str()`` is one line."""


@dataclass(frozen=True)
class Threshold:
    """One parsed expression. ``value`` is in ms for times, a fraction for ``fail_ratio``."""

    text: str
    metric: str  # canonical: "p95", "avg", "fail_ratio", ...
    kind: str  # "time", "ratio", "rate" or "count"
    op: str
    value: float
    method: str | None = None
    name: str | None = None
    percentile: float | None = None  # 0.95 for p95
    # relative to a baseline run: (sign, amount, unit) as written, e.g. ("+", 10.0, "%"); the
    # value is known once the baseline is (``resolve_relative``), which fills the two below
    relative: tuple[str, float, str] | None = None
    baseline: float | None = None
    baseline_run: str | None = None

    @property
    def unresolved(self) -> bool:
        return self.relative is not None and self.baseline is None

    def __str__(self) -> str:
        return self.text

    @property
    def selector(self) -> str:
        """The row measured, as reports name it: "Aggregated", "/api" or "GET /api"."""
        if self.name is None:
            return "Aggregated"
        return f"{self.method} {self.name}" if self.method else self.name

    @property
    def abortable(self) -> bool:
        """Whether a breach seen during the run may stop it (``--threshold-abort``).

        Upper bounds can: counters and ``max`` only grow, and rates, ratios and percentiles
        are trusted once their row has ``ABORT_MIN_REQUESTS`` requests. Lower bounds such as
        ``requests>=1000`` or ``rps>500`` are naturally unmet until the test has gone on long
        enough, so they are judged at the end only (``min`` is the mirror image).
        """
        if self.metric in _NEVER_RISES:
            return self.op in (">", ">=", "==")
        if self.op == "==":
            return self.metric in _NEVER_FALLS
        return self.op in ("<", "<=")


@dataclass(frozen=True)
class Result:
    """A threshold measured: ``measured`` is None when there was nothing to measure."""

    threshold: Threshold
    measured: float | None
    passed: bool
    during_run: bool = False  # failed while the test ran, with --threshold-abort

    def line(self) -> str:
        """``Threshold failed: p95<300ms (measured 412.3 ms)``."""
        verdict = "passed" if self.passed else "failed"
        return f"Threshold {verdict}: {self.threshold.text} ({self.describe()})"

    def describe(self) -> str:
        t = self.threshold
        if self.measured is None:
            return f"no requests for {t.selector}"
        text = f"measured {format_value(t.kind, self.measured)}"
        if t.baseline is not None:
            text += (
                f", baseline {format_value(t.kind, t.baseline)} (run {t.baseline_run}), "
                f"limit {format_value(t.kind, t.value)}"
            )
        return f"{text}, stopped the test" if self.during_run else text

    def message(self) -> str:
        """Measured against expected, for a JUnit failure."""
        t = self.threshold
        expected = f"{t.metric} {t.op} {format_value(t.kind, t.value)}"
        if t.name is not None:
            expected = f"{t.selector} {expected}"
        return f"{self.describe()}, expected {expected}"


# -- parsing -------------------------------------------------------------------------------


def parse_threshold(text: str) -> Threshold:
    """Read one expression; raises ThresholdError (a ValueError) with a one-line message."""
    source = " ".join(str(text).split())
    found = _EXPRESSION.fullmatch(source)
    if not source or found is None:
        raise _error(source, "expected METRIC OP VALUE with OP one of <, <=, >, >=, ==")
    left, op, raw_value = found.group("left"), found.group("op"), found.group("value").strip()
    if "<" in left or ">" in left or "==" in left:
        raise _error(source, "more than one comparison")
    words = left.rsplit(None, 1)
    if not words:
        raise _error(source, "no metric before the comparison")
    metric, percentile, kind = _metric(source, words[-1])
    method, name = _selector(words[0] if len(words) == 2 else "")
    relative = _RELATIVE.fullmatch(raw_value)
    if relative is not None:
        return Threshold(
            source, metric, kind, op, math.nan, method, name, percentile,
            relative=_relative(source, metric, kind, relative),
        )  # fmt: skip
    value = _value(source, metric, kind, raw_value)
    return Threshold(source, metric, kind, op, value, method, name, percentile)


def _relative(source: str, metric: str, kind: str, found: re.Match[str]) -> tuple[str, float, str]:
    sign, amount = found.group("sign"), found.group("amount")
    if sign is None:
        return ("+", 0.0, "%")
    amount = amount.strip()
    if amount.endswith("%"):
        number = _NUMBER.fullmatch(amount[:-1].strip())
        if number is None or number.group(2):
            raise _error(source, f"{amount!r} is not a percentage")
        return (sign, float(number.group(1)), "%")
    if kind == _RATIO:
        # a ratio's own unit: baseline+0.01 (one point); percentages are of the baseline
        number = _NUMBER.fullmatch(amount)
        if number is None or number.group(2):
            raise _error(source, f"{amount!r}: write baseline+0.01 or baseline+10%")
        return (sign, float(number.group(1)), "")
    return (sign, _value(source, metric, kind, amount), "")


def resolve_relative(thresholds: Iterable[Threshold], baseline: MergedStats, run_id: str) -> list[Threshold]:
    """Relative thresholds made plain from the ``baseline`` run's figures (measured on the same
    row, the same way); a relative threshold whose row the baseline lacks stays unresolved,
    others are returned as they are."""
    out = []
    for t in thresholds:
        if t.relative is None:
            out.append(t)
            continue
        base = _rows(t, baseline).measure(t)
        if base is None:
            out.append(t)
            continue
        sign, amount, unit = t.relative
        delta = base * amount / 100 if unit == "%" else amount
        value = base + delta if sign == "+" else base - delta
        if t.kind == _TIME:
            value = round(value, 3)
        out.append(dataclasses.replace(t, value=value, baseline=base, baseline_run=run_id))
    return out


def _error(source: str, reason: str) -> ThresholdError:
    return ThresholdError(f"invalid threshold {source!r}: {reason} ({_EXAMPLE})")


def _metric(source: str, word: str) -> tuple[str, float | None, str]:
    metric = word.lower()
    if metric.startswith(_CORRECTED):
        plain, percentile, kind = _metric(source, metric[len(_CORRECTED) :])
        if kind != _TIME or plain in _CLASS_METRICS:
            raise _error(source, f"{_CORRECTED} goes before a response time metric (pNN, avg...)")
        return _CORRECTED + plain, percentile, kind
    metric = _ALIASES.get(metric, metric)
    if metric in _METRICS:
        return metric, (0.5 if metric == "median" else None), _METRICS[metric]
    found = _PERCENTILE.fullmatch(metric)
    if found is not None:
        percent = float(found.group(1))
        if not 0 < percent <= 100:
            raise _error(source, f"percentile {word} must be above p0 and at most p100")
        return metric, round(percent / 100, 10), _TIME
    known = ", ".join(["pNN", *_METRICS, "corrected_pNN (and corrected_avg...)"])
    raise _error(source, f"unknown metric {word!r}; known: {known}")


def _selector(text: str) -> tuple[str | None, str | None]:
    text = text.strip()
    if not text or text == "Aggregated":
        return None, None
    found = _METHOD_AND_NAME.fullmatch(text)
    if found is not None and text[0] not in "'\"":
        return found.group(1), _unquote(found.group(2).strip())
    return None, _unquote(text)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _value(source: str, metric: str, kind: str, raw: str) -> float:
    found = _NUMBER.fullmatch(raw)
    if found is None:
        raise _error(source, f"{raw!r} is not a number" if raw else "no value after the comparison")
    number, unit = float(found.group(1)), found.group(2) or ""
    if kind == _TIME:
        if unit not in _UNITS_MS:
            raise _error(source, f"{metric} is a time: use ms, s or m (a plain number is ms)")
        # to the µs, as response times are recorded: 1.1 s is 1100.0 ms, not 1100.0000000000002
        return round(number * _UNITS_MS[unit], 3)
    if kind == _RATIO:
        if unit == "%":
            number /= 100
        elif unit:
            raise _error(source, f"{metric} is a ratio: write 0.01 or 1%")
        if number > 1:
            raise _error(source, f"{metric} is a ratio between 0 and 1 (or a percentage like 5%)")
        return round(number, 12)
    if unit:
        raise _error(source, f"{metric} takes a plain number, not {unit!r}")
    if kind == _COUNT and number != int(number):
        raise _error(source, f"{metric} is a count: use a whole number")
    return number


# -- measuring -----------------------------------------------------------------------------


class _Rows:
    """The figures of the row(s) a threshold selects; several rows are merged."""

    def __init__(self, entries: Sequence[StatsEntry]) -> None:
        self.entries = entries
        self.num_requests = sum(e.num_requests for e in entries)
        self.num_failures = sum(e.num_failures for e in entries)

    def histogram(self, corrected: bool = False) -> Histogram:
        if len(self.entries) == 1:
            entry = self.entries[0]
            return entry.corrected_histogram if corrected else entry.histogram
        merged = Histogram()
        for entry in self.entries:
            merged.merge(entry.corrected_histogram if corrected else entry.histogram)
        return merged

    def measure(self, t: Threshold) -> float | None:
        if t.metric.startswith(_CORRECTED):
            if not self.num_requests:
                return None
            return _histogram_time(self.histogram(corrected=True), t.metric[len(_CORRECTED) :], t)
        if t.kind == _COUNT:
            return float(self.num_requests if t.metric == "requests" else self.num_failures)
        if t.metric == "rps":
            return sum(e.total_rps for e in self.entries)
        if t.metric == "fail_rps":
            return sum(e.total_fail_per_sec for e in self.entries)
        if t.metric == "fail_ratio":
            if len(self.entries) == 1:
                return self.entries[0].fail_ratio
            return self.num_failures / self.num_requests if self.num_requests else 0.0
        if not self.num_requests:
            return None  # a time of no requests would pass vacuously; say so instead
        if len(self.entries) == 1:
            return _entry_time(self.entries[0], t)
        return _histogram_time(self.histogram(), t.metric, t)


def _histogram_time(h: Histogram, metric: str, t: Threshold) -> float:
    if metric == "avg":
        return h.sum / h.count / 1000
    if metric in ("min", "max"):
        return (h.min if metric == "min" else h.max) / 1000
    assert t.percentile is not None
    return h.quantile(t.percentile) / 1000


class _Classes:
    """The schedule figures of the user class(es) a threshold selects (all when none)."""

    def __init__(self, t: Threshold, stats: MergedStats) -> None:
        names = set(stats.schedules) | set(stats.dropped_arrivals)
        if t.name is not None:
            names &= {t.name}
        self.dropped = sum(stats.dropped_arrivals.get(n, 0) for n in names)
        tallies = [stats.schedules[n] for n in names if n in stats.schedules]
        self.starts = sum(tally.starts for tally in tallies)
        self.max_lag = max((tally.lag.max for tally in tallies), default=0) / 1000
        self.num_requests = self.starts + self.dropped  # arrivals due, for --threshold-abort

    def measure(self, t: Threshold) -> float | None:
        if t.metric == "dropped_arrivals":
            return float(self.dropped)
        if t.metric == "dropped_ratio":
            return self.dropped / self.num_requests if self.num_requests else 0.0
        return self.max_lag  # nothing scheduled: nothing was late


def _entry_time(entry: StatsEntry, t: Threshold) -> float:
    """A time figure exactly as the reports show it for this row (ms)."""
    if t.metric == "avg":
        return entry.avg_response_time
    if t.metric == "min":
        return entry.min_response_time or 0.0
    if t.metric == "max":
        return entry.max_response_time
    assert t.percentile is not None
    return entry.get_response_time_percentile(t.percentile)


def _rows(t: Threshold, stats: MergedStats) -> _Rows | _Classes:
    if t.metric in _CLASS_METRICS:
        return _Classes(t, stats)
    if t.name is None:
        return _Rows([stats.total])
    method = t.method.upper() if t.method else None
    # read ``entries`` rather than ``stats.get``, which would add an empty row to the reports
    return _Rows(
        [
            entry
            for (name, entry_method), entry in stats.entries.items()
            if name == t.name and (method is None or entry_method.upper() == method)
        ]
    )


def _check(t: Threshold, rows: _Rows | _Classes) -> Result:
    measured = rows.measure(t)
    passed = measured is not None and _OPS[t.op](measured, t.value)
    return Result(t, measured, passed)


def evaluate(
    thresholds: Iterable[Threshold], stats: MergedStats, earlier: Iterable[Result] = ()
) -> list[Result]:
    """Every threshold judged on the final ``stats``. A breach that stopped the test
    (``earlier``, from ``breached``) stays a failure marked ``during_run``, with the final
    figure, or the one that stopped the test if the figure has recovered since."""
    stopped = {r.threshold: r for r in earlier if not r.passed}
    results = []
    for t in thresholds:
        if t.unresolved:
            continue  # no baseline to compare with: see skipped_lines
        result = _check(t, _rows(t, stats))
        if t in stopped:
            measured = stopped[t].measured if result.passed else result.measured
            result = Result(t, measured, False, during_run=True)
        results.append(result)
    return results


def breached(
    thresholds: Iterable[Threshold], stats: MergedStats, min_requests: int = ABORT_MIN_REQUESTS
) -> list[Result]:
    """The abortable thresholds already failed while the test runs (call it every second):
    a non-empty answer means stop the test. Results carry ``during_run=True``."""
    found = []
    for t in thresholds:
        if not t.abortable or t.unresolved:
            continue
        rows = _rows(t, stats)
        result = _check(t, rows)
        if result.passed or result.measured is None:
            continue
        final = t.metric in _NEVER_FALLS or t.metric in _NEVER_RISES
        if t.op == "==" and (result.measured < t.value) == (t.metric in _NEVER_FALLS):
            continue  # not there yet, may still get there
        if not final and rows.num_requests < min_requests:
            continue
        found.append(Result(t, result.measured, False, during_run=True))
    return found


# -- reporting -----------------------------------------------------------------------------


def failed(results: Iterable[Result]) -> bool:
    return any(not r.passed for r in results)


def exit_code(results: Iterable[Result]) -> int | None:
    """``THRESHOLD_EXIT_CODE`` if any threshold failed, else None (other rules decide)."""
    return THRESHOLD_EXIT_CODE if failed(results) else None


def skipped_lines(thresholds: Iterable[Threshold], why: str) -> list[str]:
    """``Threshold skipped: p95<baseline+10% (no baseline run yet)`` for each unresolved one."""
    return [f"Threshold skipped: {t.text} ({why})" for t in thresholds if t.unresolved]


def report_lines(results: Iterable[Result]) -> list[str]:
    """One line per threshold, as printed after the final statistics."""
    return [r.line() for r in results]


def format_value(kind: str, value: float) -> str:
    """``412.3 ms``, ``0.0123``, ``512.4/s``, ``1000``: as precise as the figure is."""
    if kind == _TIME:
        return f"{_decimals(value, 3)} ms"  # recorded to the µs
    if kind == _RATIO:
        return _decimals(value, 6)
    if kind == _RATE:
        return f"{value:.1f}/s"
    return f"{value:.0f}"


def _decimals(value: float, places: int) -> str:
    return f"{value:.{places}f}".rstrip("0").rstrip(".")


def results_to_json(results: Iterable[Result]) -> list[dict[str, Any]]:
    """The results as plain JSON-ready dicts (times in ms, ratios as fractions)."""
    return [_result_json(r) for r in results]


def _result_json(r: Result) -> dict[str, Any]:
    document: dict[str, Any] = {
        "threshold": r.threshold.text,
        "metric": r.threshold.metric,
        "method": r.threshold.method,
        "name": r.threshold.name,
        "operator": r.threshold.op,
        "expected": r.threshold.value,
        "unit": "ms" if r.threshold.kind == _TIME else None,
        "measured": r.measured,
        "passed": r.passed,
        "during_run": r.during_run,
    }
    if r.threshold.relative is not None:  # compared with a stored run: which, and its figure
        document["baseline"] = r.threshold.baseline
        document["baseline_run"] = r.threshold.baseline_run
    return document
