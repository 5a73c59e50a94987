"""Merged views of request statistics: what ``environment.stats`` is.

    MergedStats    Locust's ``RequestStats`` interface (``entries``, ``total``, ``errors``...)
                   over exact totals, per-worker counts and a short time series for "current"
                   figures; ``merge`` adds one worker's ``StatsDelta`` (see ``stats_delta``,
                   where the worker's recorder and the wire form live; re-exported here).
                   The master's view.
    RecordingStats a MergedStats with its own recorder, merged on every read: the view of
                   the process that records (library mode, ``run_single_user``), current as
                   soon as a request has completed.
    PERCENTILES_TO_REPORT  what the console and CSV reports show (a locustfile may set it).

Response times are integer microseconds inside (histograms) and milliseconds on the
Locust-compatible surface. No gevent, no asyncio: master, worker and debug runner share this.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from html import escape
from itertools import accumulate
from typing import Any

from .histogram import (
    Histogram,
)
from .stats_delta import (
    DeltaError,
    RequestStats,
    ScheduleTally,
    StatsDelta,
    Tally,
    error_text,
)

__all__ = [
    "PERCENTILES",
    "PERCENTILES_TO_REPORT",
    "DeltaError",
    "ExceptionRecord",
    "MergedStats",
    "RecordingStats",
    "RequestStats",
    "ScheduleTally",
    "StatsDelta",
    "StatsEntry",
    "StatsError",
    "Tally",
    "WorkerStats",
    "error_text",
    "report_percentiles",
]

PERCENTILES = (0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0)
"""The default percentiles of every report."""
PERCENTILES_TO_REPORT = list(PERCENTILES)
"""What the console and CSV reports show: a locustfile may replace it, as with Locust
(``locust.stats.PERCENTILES_TO_REPORT = [0.5, 0.9, 0.99]``; ``locust.stats`` is this module)."""


# Locust's knobs in locust.stats, which locustfiles and plugins set (locust-plugins sets the
# console interval): the master reads them when the test starts, after the locustfile ran.
CONSOLE_STATS_INTERVAL_SEC = 2
"""Seconds between the console tables of a headless run."""
CSV_STATS_INTERVAL_SEC = 1
"""Seconds between rewrites of the --csv files (and rows of the history)."""
CSV_STATS_FLUSH_INTERVAL_SEC = 10
HISTORY_STATS_INTERVAL_SEC = 5
PERCENTILES_TO_CHART = [0.5, 0.95]
PERCENTILES_TO_STATISTICS = [0.95, 0.99]


def report_percentiles() -> tuple[float, ...]:
    """``PERCENTILES_TO_REPORT`` as it is now (read at report time, after the locustfile ran)."""
    percentiles = tuple(float(p) for p in PERCENTILES_TO_REPORT)
    if not percentiles or not all(0.0 <= p <= 1.0 for p in percentiles):
        raise ValueError(
            f"PERCENTILES_TO_REPORT must be fractions between 0 and 1, got {PERCENTILES_TO_REPORT!r}"
        )
    return percentiles


def get_readable_percentiles(percentile_list: Iterable[float]) -> list[str]:
    """Column names for percentiles as Locust spells them: ``[0.5, 0.999]`` → ``["50%", "99.9%"]``
    (Locust's helper of this name; locust-plugins' transaction summary uses it)."""
    return [f"{int(v) if (v := p * 100).is_integer() else round(v, 6)}%" for p in percentile_list]


def __getattr__(name: str) -> Any:
    # Locust keeps its console printers in locust.stats; lcore's need gevent, which this
    # module never imports, so they are looked up on first use.
    if name in ("stats_printer", "stats_history"):
        from . import local_runner

        return getattr(local_runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = 10

# the most (name, method) entries MergedStats keeps (--max-stats-entries): a locustfile that
# names requests by URL with ids makes one per id, and 50,000 of them cost the master half a
# gigabyte; past the cap, new names are counted in one row per method
DEFAULT_MAX_ENTRIES = 1000

log = logging.getLogger(__name__)


def overflow_name(max_entries: int) -> str:
    """The row that counts, per method, the names past the cap."""
    return f"Other (over {max_entries} names)"


"""Seconds covered by "current" figures (RPS, percentiles) unless told otherwise."""

# -- master side -----------------------------------------------------------------------------


class StatsError:
    """Failures of one (method, name) with one error text, as Locust's ``StatsError``.

    ``error`` is, as in Locust, the first exception object in the process that recorded it
    (library mode, ``run_single_user``) and its text everywhere else (the master); ``text``
    is always the text, the error's name in every report."""

    __slots__ = ("method", "name", "error", "text", "occurrences", "first_seen", "last_seen")

    def __init__(
        self,
        method: str,
        name: str,
        error: object,
        occurrences: int = 0,
        first_seen: float | None = None,
        last_seen: float | None = None,
    ) -> None:
        self.method = method
        self.name = name
        self.error = error
        self.text = error_text(error)
        self.occurrences = occurrences
        self.first_seen = first_seen
        self.last_seen = last_seen

    @classmethod
    def parse_error(cls, error: object) -> str:
        """An error's text: a string as is, an exception by its repr, addresses masked."""
        return error_text(error)

    @classmethod
    def create_key(cls, method: str, name: str, error: object) -> tuple[str, str, str]:
        """The key of ``stats.errors`` for this failure (Locust's classmethod; lcore's keys
        are (method, name, text) tuples)."""
        return (method, name, error_text(error))

    def occurred(self) -> None:
        self.occurrences += 1
        now = time.time()
        if self.first_seen is None:
            self.first_seen = now
        self.last_seen = now

    def serialize(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "name": self.name,
            "error": self.text,
            "occurrences": self.occurrences,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }

    @classmethod
    def unserialize(cls, data: dict[str, Any]) -> StatsError:
        return cls(
            data["method"], data["name"], data["error"], data["occurrences"],
            data.get("first_seen"), data.get("last_seen"),
        )  # fmt: skip

    def to_dict(self, escape_string_values: bool = False) -> dict[str, Any]:
        return {
            "method": escape(self.method) if escape_string_values else self.method,
            "name": escape(self.name) if escape_string_values else self.name,
            "error": escape(self.text) if escape_string_values else self.text,
            "occurrences": self.occurrences,
        }

    def to_name(self) -> str:
        """``"METHOD name: error"``, with a ``CatchResponseError(...)`` wrapper taken off."""
        error = self.text
        prefix = "CatchResponseError("
        if error.startswith(prefix) and error.endswith(")"):
            error = error[len(prefix) : -1]
        return f"{self.method} {self.name}: {error}"

    def __repr__(self) -> str:
        return f"<StatsError {self.to_name()!r} x{self.occurrences}>"


class ExceptionRecord:
    """A task exception: how often, which message and traceback, from which workers.

    Also readable as a dict (``record["count"]``), the shape of Locust's
    ``runner.exceptions`` values.
    """

    __slots__ = ("count", "msg", "traceback", "nodes")

    def __init__(self, msg: str, traceback: str) -> None:
        self.count = 0
        self.msg = msg
        self.traceback = traceback
        self.nodes: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        if key not in self.__slots__:
            raise KeyError(key)
        return getattr(self, key)

    def __repr__(self) -> str:
        return f"<ExceptionRecord {self.msg[:60]!r} x{self.count} from {sorted(self.nodes)}>"


class WorkerStats:
    """What one worker has reported since the last reset."""

    __slots__ = ("num_requests", "num_failures", "num_deltas", "last_report")

    def __init__(self) -> None:
        self.num_requests = 0
        self.num_failures = 0
        self.num_deltas = 0
        self.last_report: float | None = None  # the end of its latest delta

    def __repr__(self) -> str:
        return f"<WorkerStats requests={self.num_requests} failures={self.num_failures}>"


class StatsEntry:
    """One (name, method) row, with Locust's ``StatsEntry`` attribute names.

    Response times are in milliseconds (floats); counts are exact. "Current" figures cover
    the owning ``MergedStats``' window (10 s unless told otherwise). ``num_reqs_per_sec`` and
    ``num_fail_per_sec`` hold the recent complete seconds, by when the master merged them.
    """

    __slots__ = (
        "stats",
        "name",
        "method",
        "_num_failures",
        "_total_content_length",
        "start_time",
        "num_reqs_per_sec",
        "num_fail_per_sec",
        "_histogram",
        "_corrected",
        "_binned",
        "_last",
    )
    num_none_requests = 0
    use_response_times_cache = True

    def __init__(self, stats: MergedStats, name: str, method: str, start_time: float) -> None:
        self.stats = stats
        self.name = name
        self.method = method
        self._num_failures = 0
        self._total_content_length = 0
        self.start_time = start_time
        self.num_reqs_per_sec: dict[int, int] = {}
        self.num_fail_per_sec: dict[int, int] = {}
        self._histogram = Histogram()
        # the response times from the intended starts, None while they equal _histogram
        self._corrected: Histogram | None = None
        self._binned = (0, 0)  # requests and failures already counted in the per-second bins
        self._last: float | None = None

    @property
    def histogram(self) -> Histogram:
        """All response times of this entry, in µs."""
        self.stats._sync()
        return self._histogram

    @property
    def corrected_histogram(self) -> Histogram:
        """The response times (µs) from the intended starts: with the lag of tasks that
        started behind their schedule, and a paced user's missed slots. The same histogram
        as ``histogram`` when nothing was late. Do not modify."""
        self.stats._sync()
        return self._histogram if self._corrected is None else self._corrected

    @property
    def is_corrected(self) -> bool:
        """Some request of this entry started behind its schedule: the corrected figures differ."""
        self.stats._sync()
        return self._corrected is not None

    @property
    def num_requests(self) -> int:
        self.stats._sync()
        return self._histogram.count

    @property
    def num_failures(self) -> int:
        self.stats._sync()
        return self._num_failures

    @num_failures.setter
    def num_failures(self, value: int) -> None:
        self._num_failures = value

    @property
    def total_content_length(self) -> int:
        self.stats._sync()
        return self._total_content_length

    @total_content_length.setter
    def total_content_length(self, value: int) -> None:
        self._total_content_length = value

    @property
    def last_request_timestamp(self) -> float | None:
        """The end of the latest delta that had requests of this entry."""
        if self.num_requests != self._binned[0]:  # some since the last tick
            return self.stats._last_end
        return self._last

    @property
    def total_response_time(self) -> float:
        return self.histogram.sum / 1000

    @property
    def min_response_time(self) -> float | None:
        h = self.histogram
        return h.min / 1000 if h.count else None

    @property
    def max_response_time(self) -> float:
        return self.histogram.max / 1000

    @property
    def avg_response_time(self) -> float:
        h = self.histogram
        return h.sum / h.count / 1000 if h.count else 0.0

    @property
    def median_response_time(self) -> float:
        return self.histogram.quantile(0.5) / 1000

    @property
    def avg_content_length(self) -> float:
        n = self.num_requests
        return self.total_content_length / n if n else 0.0

    @property
    def fail_ratio(self) -> float:
        n = self.num_requests
        if n:
            return self.num_failures / n
        return 1.0 if self.num_failures else 0.0

    @property
    def current_rps(self) -> float:
        return self.stats._per_second_rate(self, 0)

    @property
    def current_fail_per_sec(self) -> float:
        return self.stats._per_second_rate(self, 1)

    @property
    def total_rps(self) -> float:
        elapsed = self.stats._elapsed()
        return self.num_requests / elapsed if elapsed else 0.0

    @property
    def total_fail_per_sec(self) -> float:
        elapsed = self.stats._elapsed()
        return self.num_failures / elapsed if elapsed else 0.0

    def get_response_time_percentile(self, percent: float) -> float:
        """The response time (ms) that ``percent`` (0.0-1.0) of the requests were within."""
        return self.histogram.quantile(percent) / 1000

    def get_response_time_percentiles(self, percents: Sequence[float] = PERCENTILES) -> list[float]:
        """Several percentiles (ms) in one pass."""
        return [v / 1000 for v in self.histogram.quantiles(percents)]

    def get_corrected_response_time_percentile(self, percent: float) -> float:
        """The response time (ms) from the intended start that ``percent`` of the requests
        were within (``get_response_time_percentile`` when nothing was late)."""
        return self.corrected_histogram.quantile(percent) / 1000

    def get_corrected_response_time_percentiles(
        self, percents: Sequence[float] = PERCENTILES
    ) -> list[float]:
        """Several corrected percentiles (ms) in one pass."""
        return [v / 1000 for v in self.corrected_histogram.quantiles(percents)]

    def get_current_response_time_percentile(self, percent: float) -> float:
        """Like ``get_response_time_percentile``, over the window only (0 without requests)."""
        return self.current_histogram().quantile(percent) / 1000

    def current_histogram(self) -> Histogram:
        """The response times (µs) of the window: do not modify."""
        return self.stats._window_histogram(self)

    def current_corrected_histogram(self) -> Histogram:
        """The corrected response times (µs) of the window: do not modify."""
        return self.stats._window_histogram(self, corrected=True)

    def __repr__(self) -> str:
        return (
            f"<StatsEntry {self.method} {self.name!r} requests={self.num_requests} "
            f"failures={self.num_failures}>"
        )


class _AggregatedEntry(StatsEntry):
    """The "Aggregated" row: counts kept up to date by every merge, the histogram rebuilt
    from the entries when it is read after a change."""

    __slots__ = ()

    @property
    def histogram(self) -> Histogram:
        self.stats._sync()
        return self.stats._aggregate()

    @property
    def corrected_histogram(self) -> Histogram:
        self.stats._sync()
        return self.stats._aggregate_corrected()

    @property
    def is_corrected(self) -> bool:
        self.stats._sync()
        return self.stats._corrected_entries > 0

    @property
    def num_requests(self) -> int:
        self.stats._sync()
        return self.stats._num_requests


class MergedStats:
    """The master's statistics: exact sums of every delta merged, per entry and in total.

    Looks like Locust's ``RequestStats`` to a locustfile: ``entries`` keyed by
    ``(name, method)``, ``total``, ``errors``, ``get``, ``num_requests``... Also the single
    process' statistics (the debug runner merges its own deltas here).

    ``merge`` only adds. Once a second (at the first merge or read in a new second of
    ``clock``) a tick does the time series: it closes the per-second request and failure
    counts of the second that ended and keeps a snapshot of every histogram, so that "current"
    figures cover the last ``window`` seconds. Tests pass a fake ``clock``.

    In the process that records (library mode, ``run_single_user``), ``pull`` is set: a
    callable that merges what the recorder holds and has not merged yet. Every read calls it
    first, so a request counts as soon as it has completed, while recording itself stays the
    recorder's few steps (nothing is merged per request). The master has no ``pull``.
    """

    def __init__(
        self,
        window: float = CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW,
        clock: Callable[[], float] = time.time,
        pull: Callable[[], None] | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.window = window
        self.max_entries = max_entries
        self.overflow_warned = False
        self._clock = clock
        self.pull = pull
        self.reset()

    def _sync(self) -> None:
        pull = self.pull
        if pull is not None:
            pull()

    def reset(self) -> None:
        """Forget everything: entries, errors, exceptions, per-worker counts, time series."""
        now = self._clock()
        self._entries: dict[tuple[str, str], StatsEntry] = {}
        self._errors: dict[tuple[str, str, str], StatsError] = {}
        self._exceptions: dict[tuple[str, str], ExceptionRecord] = {}
        self._per_worker: dict[str, WorkerStats] = {}
        self.history: list[dict[str, Any]] = []  # for charts, as Locust's; others append
        self._reset_time = now
        self._first_start: float | None = None  # start of the first delta with requests
        self._first_second: int | None = None  # the tick second of the first requests
        self._num_requests = 0
        self._last_end: float | None = None  # the latest end of a delta with requests
        self._total = _AggregatedEntry(self, "Aggregated", "", now)
        self._total_histogram = Histogram()
        self._total_dirty = False
        self._corrected_entries = 0  # entries with a corrected histogram of their own
        self._total_corrected = Histogram()
        self._total_corrected_dirty = False
        self._dropped_arrivals: dict[str, int] = {}
        self._schedules: dict[str, ScheduleTally] = {}
        self._second: int | None = None  # the second of the latest tick
        # (second, {entry key, or None for the total: histogram at the start of that second})
        self._snapshots: deque[tuple[int, dict[Any, Histogram]]] = deque()
        self._window_cache: dict[Any, tuple[Any, Histogram]] = {}

    reset_all = reset
    clear_all = reset

    @property
    def entries(self) -> dict[tuple[str, str], StatsEntry]:
        """Entries keyed by (name, method)."""
        self._sync()
        return self._entries

    @property
    def errors(self) -> dict[tuple[str, str, str], StatsError]:
        """Failures keyed by (method, name, error text)."""
        self._sync()
        return self._errors

    @property
    def exceptions(self) -> dict[tuple[str, str], ExceptionRecord]:
        """Task exceptions keyed by (message, traceback)."""
        self._sync()
        return self._exceptions

    @property
    def per_worker(self) -> dict[str, WorkerStats]:
        self._sync()
        return self._per_worker

    @property
    def dropped_arrivals(self) -> dict[str, int]:
        """Open-model arrivals that found no free user under the ceiling, per user class."""
        self._sync()
        return self._dropped_arrivals

    @property
    def schedules(self) -> dict[str, ScheduleTally]:
        """Scheduled task starts per user class: how late (``lag``, µs) and the slots paced
        users missed (see ``schedule_lag``)."""
        self._sync()
        return self._schedules

    @property
    def fell_behind(self) -> bool:
        """Some request was counted from an intended start earlier than its send."""
        self._sync()
        return self._corrected_entries > 0

    # -- merging -------------------------------------------------------------------------

    def merge(self, worker_id: str, delta: StatsDelta, now: float | None = None) -> None:
        """Add ``delta`` (from ``worker_id``) to every figure."""
        second = int(self._clock() if now is None else now)
        if self._second is None or second > self._second:
            self._tick(second)
        entries = self._entries
        columns = delta.columns()
        fields, buckets = columns.fields, columns.buckets
        if columns.corrected.index:
            self._start_corrected(columns, delta.start)
        field_iter = iter(fields)
        position = 0
        # the master's hottest loop: a few steps per entry, two per non-empty bucket
        for key, failed, length, n, total, low, high, size, first, last in zip(
            columns.entry_keys,
            *(field_iter,) * 6,
            columns.sizes,
            columns.firsts,
            columns.lasts,
            strict=True,
        ):
            entry = entries.get(key)
            if entry is None:
                if len(entries) >= self.max_entries:
                    key = self._overflow_key(key)
                    entry = entries.get(key)
                if entry is None:
                    entry = entries[key] = StatsEntry(self, key[0], key[1], delta.start)
            entry._total_content_length += length
            if failed:
                entry._num_failures += failed
            # Histogram.merge_wire, inlined: a call per entry would cost a tenth of the merge
            histogram = entry._histogram
            histogram.count += n
            histogram.sum += total
            if low < histogram._min:
                histogram._min = low
            if high > histogram._max:
                histogram._max = high
            counts, base = histogram._counts, histogram._base
            if counts is None or first < base or last - base >= len(counts):
                counts, base = histogram._dense(first, last + 1), histogram._base
            index = -1 - base
            stop = position + 2 * size
            values = iter(buckets[position:stop])
            position = stop
            for gap, c in zip(values, values, strict=True):
                index += gap
                counts[index] += c
        if self._corrected_entries:
            self._merge_corrected(columns)
        if delta.errors:
            self._merge_errors(delta)
        if delta.exceptions:
            self._merge_exceptions(worker_id, delta)
        if delta.dropped_arrivals or delta.schedules:
            self._merge_schedules(delta)
        requests = sum(fields[2::6])
        failures = sum(fields[0::6]) if delta.errors else 0
        worker = self._per_worker.get(worker_id)
        if worker is None:
            worker = self._per_worker[worker_id] = WorkerStats()
        worker.num_deltas += 1
        worker.last_report = delta.end
        if not requests:
            return
        worker.num_requests += requests
        worker.num_failures += failures
        total = self._total
        self._num_requests += requests
        total._num_failures += failures
        total._total_content_length += sum(fields[1::6])
        if self._last_end is None or delta.end > self._last_end:
            self._last_end = delta.end
        if self._first_start is None:
            self._first_start = total.start_time = delta.start
            self._first_second = self._second
        self._total_dirty = self._total_corrected_dirty = True

    def _entry(self, key: tuple[str, str], start: float) -> StatsEntry:
        """The entry a delta's (name, method) merges into, made if need be (past the cap:
        the overflow row of its method)."""
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            if len(entries) >= self.max_entries:
                key = self._overflow_key(key)
                entry = entries.get(key)
            if entry is None:
                entry = entries[key] = StatsEntry(self, key[0], key[1], start)
        return entry

    def _start_corrected(self, columns: Any, start: float) -> None:
        """Before merging a delta with corrected histograms: each of their entries gets one of
        its own, a copy of its histogram (what it merged so far had no lag)."""
        # every entry up to the last corrected one is made now, in the delta's order, as the
        # merge would make them (which names get a row of their own under the cap must not
        # depend on lags)
        entries = [
            self._entry(key, start) for key in columns.entry_keys[: columns.corrected.index[-1] + 1]
        ]
        for position in columns.corrected.index:
            entry = entries[position]
            if entry._corrected is None:
                entry._corrected = entry._histogram.copy()
                self._corrected_entries += 1

    def _merge_corrected(self, columns: Any) -> None:
        """After merging a delta's histograms: the entries with a corrected histogram add the
        delta's corrected one, or its plain one where the delta had no lag."""
        entries = self._entries
        corrected = columns.corrected
        late = dict(zip(corrected.index, range(len(corrected.index)), strict=True))
        c_starts = list(accumulate(corrected.sizes, initial=0))
        position = 0
        fields = columns.fields
        for i, (key, size, first, last) in enumerate(
            zip(columns.entry_keys, columns.sizes, columns.firsts, columns.lasts, strict=True)
        ):
            stop = position + 2 * size
            entry = entries.get(key)
            if entry is None:  # folded past the cap
                entry = entries[(overflow_name(self.max_entries), key[1])]
            target = entry._corrected
            if target is not None:
                j = late.get(i)
                if j is None:
                    n, total, low, high = fields[6 * i + 2 : 6 * i + 6]
                    pairs = columns.buckets[position:stop]
                else:
                    n, total, low, high = corrected.fields[4 * j : 4 * j + 4]
                    pairs = corrected.buckets[2 * c_starts[j] : 2 * c_starts[j + 1]]
                    first, last = corrected.firsts[j], corrected.lasts[j]
                target.merge_wire(n, total, low, high, first, last, pairs)
            position = stop
        self._total_corrected_dirty = True

    def _merge_schedules(self, delta: StatsDelta) -> None:
        dropped = self._dropped_arrivals
        for user_class, n in delta.dropped_arrivals.items():
            dropped[user_class] = dropped.get(user_class, 0) + n
        schedules = self._schedules
        for user_class, tally in delta.schedules.items():
            mine = schedules.get(user_class)
            if mine is None:
                mine = schedules[user_class] = ScheduleTally()
            mine.lag.merge(tally.lag)
            mine.missed += tally.missed

    def _overflow_key(self, key: tuple[str, str]) -> tuple[str, str]:
        """Where a new (name, method) past the cap is counted; warns once per reset."""
        if not self.overflow_warned:
            self.overflow_warned = True
            log.warning(
                "More than %d distinct request names (the latest: %r): new ones are counted as "
                "%r per method. Names that embed ids or query strings (the URL is the default "
                "name) make one entry each: group them with name=, e.g. "
                "self.client.get(f\"/item/{id}\", name=\"/item/[id]\"); or raise "
                "--max-stats-entries",
                self.max_entries, key[0][:200], overflow_name(self.max_entries),
            )  # fmt: skip
        return overflow_name(self.max_entries), key[1]

    def _merge_errors(self, delta: StatsDelta) -> None:
        errors = self._errors
        entries = self._entries
        for key, occurrences in delta.errors.items():
            method, name = key[0], key[1]
            if (name, method) not in entries:  # its entry was folded past the cap: so is it
                key = (method, overflow_name(self.max_entries), key[2])
            error = errors.get(key)
            if error is None:
                error = errors[key] = StatsError(*key, first_seen=delta.end)
                original = delta.error_objects.get(key)
                if original is not None:
                    error.error = original
            error.occurrences += occurrences
            error.last_seen = delta.end

    def _merge_exceptions(self, worker_id: str, delta: StatsDelta) -> None:
        exceptions = self._exceptions
        for key, count in delta.exceptions.items():
            record = exceptions.get(key)
            if record is None:
                record = exceptions[key] = ExceptionRecord(*key)
            record.count += count
            record.nodes.add(worker_id)

    # -- Locust's RequestStats surface ----------------------------------------------------

    @property
    def total(self) -> StatsEntry:
        """The "Aggregated" entry (method ``""``)."""
        return self._total

    def get(self, name: str, method: str) -> StatsEntry:
        """The entry for (name, method), created empty if there is none yet (as Locust does)."""
        self._sync()
        entry = self._entries.get((name, method))
        if entry is None:
            entry = self._entries[(name, method)] = StatsEntry(self, name, method, self._clock())
        return entry

    @property
    def num_requests(self) -> int:
        self._sync()
        return self._num_requests

    @property
    def num_failures(self) -> int:
        return self._total.num_failures

    @property
    def num_none_requests(self) -> int:
        return 0

    @property
    def start_time(self) -> float:
        """When the first request merged since the last reset was recorded (about)."""
        return self._first_start if self._first_start is not None else self._reset_time

    @property
    def last_request_timestamp(self) -> float | None:
        self._sync()
        return self._last_end

    def sorted_entries(self) -> list[StatsEntry]:
        """Entries sorted by (name, method), as Locust's reports list them."""
        entries = self.entries
        return [entries[key] for key in sorted(entries)]

    def __repr__(self) -> str:
        return (
            f"<MergedStats entries={len(self._entries)} requests={self._num_requests} "
            f"failures={self._total._num_failures} workers={len(self._per_worker)}>"
        )

    # -- a stored run, read back (lcore.exporters.results_*) ------------------------------

    @classmethod
    def restored(
        cls,
        entries: Iterable[tuple[str, str, Histogram, int, int, Histogram | None]],
        errors: Iterable[tuple[str, str, str, int, float | None, float | None]],
        exceptions: Iterable[tuple[str, str, int, Iterable[str]]],
        start: float,
        last_end: float | None,
        schedules: dict[str, ScheduleTally] | None = None,
        dropped_arrivals: dict[str, int] | None = None,
    ) -> MergedStats:
        """A view over totals kept elsewhere: ``entries`` as (method, name, histogram,
        failures, content length, corrected histogram or None), ``errors`` as (method, name,
        error, occurrences, first seen, last seen), ``exceptions`` as (message, traceback,
        count, nodes). Every figure the reports read (rates over ``start``..``last_end``,
        percentiles, corrected ones, the Aggregated row) comes out as it did from the stats
        these were taken from."""
        end = last_end if last_end is not None else start
        stats = cls(clock=lambda: end)
        for method, name, histogram, failures, content_length, corrected in entries:
            entry = stats._entries[(name, method)] = StatsEntry(stats, name, method, start)
            entry._histogram = histogram
            if corrected is not None:
                entry._corrected = corrected
                stats._corrected_entries += 1
            entry._num_failures = failures
            entry._total_content_length = content_length
            entry._binned = (histogram.count, failures)
            entry._last = last_end
            stats._num_requests += histogram.count
            stats._total._num_failures += failures
            stats._total._total_content_length += content_length
        for method, name, error, occurrences, first_seen, last_seen in errors:
            stats._errors[(method, name, error)] = StatsError(
                method, name, error, occurrences, first_seen, last_seen
            )
        for msg, traceback, count, nodes in exceptions:
            record = stats._exceptions[(msg, traceback)] = ExceptionRecord(msg, traceback)
            record.count = count
            record.nodes.update(nodes)
        stats._schedules.update(schedules or {})
        stats._dropped_arrivals.update(dropped_arrivals or {})
        stats._first_start = stats._total.start_time = start
        stats._last_end = last_end
        stats._total_dirty = stats._total_corrected_dirty = True
        return stats

    # -- derived figures (used by StatsEntry) ----------------------------------------------

    def _aggregate_corrected(self) -> Histogram:
        if not self._corrected_entries:
            return self._aggregate()
        if self._total_corrected_dirty:
            merged = Histogram()
            for entry in self._entries.values():
                merged.merge(entry._histogram if entry._corrected is None else entry._corrected)
            self._total_corrected = merged
            self._total_corrected_dirty = False
        return self._total_corrected

    def _aggregate(self) -> Histogram:
        if self._total_dirty:
            merged = Histogram()
            for entry in self._entries.values():
                merged.merge(entry._histogram)
            self._total_histogram = merged
            self._total_dirty = False
        return self._total_histogram

    def _elapsed(self) -> float:
        last = self.last_request_timestamp
        if last is None:
            return 0.0
        return max(last - self.start_time, 0.0)

    def _now(self) -> int:
        """The current second, after the tick it may call for."""
        second = int(self._clock())
        if self._second is None or second > self._second:
            self._tick(second)
        return second

    def _per_second_rate(self, entry: StatsEntry, which: int) -> float:
        """Requests (``which`` 0) or failures (1) per second over the last ``window``
        complete seconds (the current one is still filling)."""
        end = self._now()
        if self._first_second is None:
            return 0.0
        start = max(end - math.ceil(self.window), self._first_second)
        if end <= start:
            return 0.0
        per_second = entry.num_fail_per_sec if which else entry.num_reqs_per_sec
        return sum(per_second.get(s, 0) for s in range(start, end)) / (end - start)

    def _tick(self, second: int) -> None:
        """The time series, once a second: close the second that ended, take snapshots."""
        closed, self._second = self._second, second
        horizon = second - math.ceil(self.window) - 2
        total = self._total
        for entry in (*self._entries.values(), total):
            requests = entry._histogram.count if entry is not total else self._num_requests
            failures = entry._num_failures
            binned_requests, binned_failures = entry._binned
            if closed is not None and (requests != binned_requests or failures != binned_failures):
                entry._binned = (requests, failures)
                if requests != binned_requests:
                    entry.num_reqs_per_sec[closed] = requests - binned_requests
                    entry._last = self._last_end
                if failures != binned_failures:
                    entry.num_fail_per_sec[closed] = failures - binned_failures
            for per_second in (entry.num_reqs_per_sec, entry.num_fail_per_sec):
                while per_second and next(iter(per_second)) < horizon:  # oldest first
                    del per_second[next(iter(per_second))]
        self._snapshot(second)

    def _snapshot(self, second: int) -> None:
        """Keep a copy of every histogram as it is at the start of ``second``.

        An entry that did not change since the previous snapshot shares that copy. Old
        snapshots are dropped once a newer one is old enough to be the window's baseline.
        """
        snapshots = self._snapshots
        previous = snapshots[-1][1] if snapshots else {}
        current: dict[Any, Histogram] = {}

        def keep(key: Any, histogram: Histogram) -> None:
            old = previous.get(key)
            same = old is not None and old.count == histogram.count
            current[key] = old if same else histogram.compact_copy()  # type: ignore[assignment]

        for key, entry in self._entries.items():
            keep(key, entry._histogram)
            if entry._corrected is not None:  # (a paced user's missed slots add to its count)
                keep(("corrected", key), entry._corrected)
        keep(None, self._aggregate())
        if self._corrected_entries:
            keep(("corrected", None), self._aggregate_corrected())
        snapshots.append((second, current))
        horizon = second - self.window
        while len(snapshots) > 1 and snapshots[1][0] <= horizon:
            snapshots.popleft()

    def _window_histogram(self, entry: StatsEntry, corrected: bool = False) -> Histogram:
        plain_key = None if entry is self._total else (entry.name, entry.method)
        key: Any = ("corrected", plain_key) if corrected else plain_key
        cutoff = self._now() - self.window
        cumulative = entry.corrected_histogram if corrected else entry.histogram
        baseline: Histogram | None = None
        baseline_second = None
        for snap_second, snapshot in reversed(self._snapshots):
            if snap_second <= cutoff:
                baseline, baseline_second = snapshot.get(key), snap_second
                if baseline is None and corrected:  # nothing was late yet: the same then
                    baseline = snapshot.get(plain_key)
                break
        stamp = (baseline_second, cumulative.count, cumulative is entry._histogram)
        cached = self._window_cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        window = cumulative.copy()
        if baseline is not None:
            window.subtract(baseline)
        self._window_cache[key] = (stamp, window)
        return window


class RecordingStats(MergedStats):
    """``environment.stats`` in the process that records (library mode, ``run_single_user``):
    its own ``recorder`` (what ``events.request`` feeds), merged into this view whenever the
    view is read. The recording hot path is the recorder's alone; merging happens on reads
    and on ``flush`` (a runner's once-a-second loop keeps the per-second series on time)."""

    def __init__(
        self,
        node: str = "local",
        window: float = CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.recorder = RequestStats()
        super().__init__(window, clock, pull=self.flush)

    def flush(self) -> None:
        """Merge what the recorder holds (nothing to do, and no delta, when it holds nothing)."""
        recorder = self.recorder
        if (
            recorder.entries
            or recorder.errors
            or recorder.exceptions
            or recorder.dropped_arrivals
            or recorder.schedules
        ):
            self.merge(self.node, recorder.take_delta())

    def reset(self) -> None:
        recorder = getattr(self, "recorder", None)
        if recorder is not None:
            recorder.reset()
        super().reset()

    reset_all = reset
    clear_all = reset


def sort_stats(stats: dict[Any, Any]) -> list[Any]:
    """The values of ``stats`` sorted by key (Locust's helper of the same name)."""
    return [stats[key] for key in sorted(stats)]


def iter_entries_with_total(stats: MergedStats) -> Iterable[StatsEntry]:
    """Every entry sorted by (name, method), then the "Aggregated" one: the rows of a report."""
    yield from stats.sorted_entries()
    yield stats.total
