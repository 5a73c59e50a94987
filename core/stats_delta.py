"""What a worker records and ships: the hot-path recorder and the stats delta with its wire form.

    RequestStats   ``record`` is the hot path of every request (one dict lookup);
                   ``take_delta`` swaps in fresh tallies and hands back the old ones.
    StatsDelta     one interval of one worker: tallies per (method, name), errors, task
                   exceptions, and per user class the open model's dropped arrivals and how
                   late scheduled tasks started. ``to_wire``/``from_wire`` (and
                   ``encode``/``decode``) carry it to the master; decoding validates
                   everything first and raises ``DeltaError``.

Coordinated omission: a request recorded during a task that started behind its schedule (see
``schedule_lag``) is also counted, with the lag added, in its tally's ``corrected`` histogram,
the response time from the intended start. A tally gets that histogram on its first late
request (a copy of the uncorrected one: every request before it was on time) and has none
while everything is on time, so a run without schedules records and sends what it always did.

No gevent, no asyncio: the master decodes with this module too.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Sequence
from itertools import accumulate, repeat
from operator import le, lt, mul, sub
from typing import Any, NamedTuple, cast

import msgpack
from greenlet import getcurrent

from .histogram import (
    EXACT_BITS,
    MAX_COUNT,
    MAX_TRACKABLE_US,
    MAX_VALUE_US,
    N_BUCKETS,
    TOP_INDEX,
    TOP_SHIFT,
    Histogram,
    HistogramError,
)
from .schedule_lag import LateGreenlet
from .schedule_lag import late as _late

WIRE_VERSION = 2
MAX_ENTRIES = 100_000
MAX_USER_CLASSES = 10_000
MAX_ERRORS = 100_000
MAX_NAME_LENGTH = 65_536
MAX_TEXT_LENGTH = 1 << 20
MAX_CONTENT_LENGTH = 1 << 63

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class DeltaError(ValueError):
    """A stats delta that is truncated, garbled or inconsistent; nothing was merged."""


def _text(value: object, limit: int) -> str:
    text = value if type(value) is str else str(value)
    return text if len(text) <= limit else text[:limit]


def error_text(error: object) -> str:
    """How a failure is named in the error table: a string as is, anything else by its repr.

    Memory addresses are masked so that the same error from many objects counts as one.
    """
    if isinstance(error, str):
        text = error
    else:
        try:
            text = repr(error)
        except Exception:  # a broken __repr__ must not lose the request
            text = f"{type(error).__name__}(<unprintable>)"
    if " at 0x" in text:
        text = _ADDRESS.sub(" at 0x....", text)
    return text[:MAX_TEXT_LENGTH]


# -- worker side ---------------------------------------------------------------------------


class Tally:
    """What one (method, name) recorded during one interval.

    ``corrected``: the response times from the intended starts (µs), None while they equal
    ``histogram`` (no request of this interval was late)."""

    __slots__ = ("histogram", "failures", "content_length", "corrected")

    def __init__(
        self,
        histogram: Histogram | None = None,
        failures: int = 0,
        content_length: int = 0,
        corrected: Histogram | None = None,
    ) -> None:
        self.histogram = Histogram() if histogram is None else histogram
        self.failures = failures
        self.content_length = content_length
        self.corrected = corrected

    @property
    def count(self) -> int:
        return self.histogram.count

    @property
    def corrected_histogram(self) -> Histogram:
        """The response times from the intended starts (the uncorrected ones when equal)."""
        return self.histogram if self.corrected is None else self.corrected

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tally):
            return NotImplemented
        return (self.failures, self.content_length, self.histogram, self.corrected) == (
            other.failures,
            other.content_length,
            other.histogram,
            other.corrected,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Tally count={self.count} failures={self.failures} bytes={self.content_length}>"


class RequestStats:
    """The worker's recorder: tallies per (method, name) for the interval in progress.

    ``record`` is what ``events.request`` and the HTTP client call for every request. A
    worker is one OS thread (greenlets), and neither ``record`` nor ``take_delta`` yields, so
    the swap in ``take_delta`` can neither lose nor double a request: no locks.
    """

    def __init__(self, now: float | None = None) -> None:
        self._entries: dict[tuple[str, str], Tally] = {}
        self._errors: dict[tuple[str, str, str], int] = {}
        # the first exception object of each error of the interval: what Locust's StatsError
        # holds in the process that recorded it (never sent: the wire carries the text)
        self._error_objects: dict[tuple[str, str, str], object] = {}
        self._exceptions: dict[tuple[str, str], int] = {}
        self._interval_start = time.time() if now is None else now
        # the previous interval's tallies: a new one reserves the buckets its predecessor
        # used, so that recording does not grow lists
        self._previous: dict[tuple[str, str], Tally] = {}
        # open-model arrivals that found no free user under the ceiling, per user class
        self._dropped_arrivals: dict[str, int] = {}
        # how late scheduled tasks started, per user class
        self._schedules: dict[str, ScheduleTally] = {}
        # some tally of this interval has a corrected histogram (counted in schedule_lag.late)
        self._late_interval = False

    def record(
        self,
        request_type: str,
        name: str,
        response_time_ms: float,
        response_length: int,
        exception: object | None,
    ) -> None:
        """Count one request; ``exception`` not None makes it a failure as well."""
        value = int(response_time_ms * 1000.0 + 0.5)  # first: bad input raises, changing nothing
        tally = self._entries.get((request_type, name))
        if tally is None:
            tally = self._new_tally(request_type, name)
        tally.content_length += response_length
        if exception is not None:
            self._failure(tally, request_type, name, exception)
        if _late[0]:  # some task is behind its schedule, or was in this interval
            self._record_corrected(tally, value)
        # Histogram.record, inlined: this runs for every request, and a call is a tenth of it
        # (tests check that both count the same)
        if value < 0:
            value = 0
        shift = value.bit_length() - EXACT_BITS
        if shift <= 0:
            index = value
        elif shift <= TOP_SHIFT:
            index = (shift << 6) + (value >> shift)
        else:
            index = TOP_INDEX
            if value > MAX_VALUE_US:
                value = MAX_VALUE_US
        h = tally.histogram
        h.count += 1
        h.sum += value
        if value < h._min:
            h._min = value
        if value > h._max:
            h._max = value
        offset = index - h._base
        if offset >= 0:
            try:
                h._counts[offset] += 1  # type: ignore[index]
                return
            except (IndexError, TypeError):
                pass
        h._add_dense(((index, 1),))

    def __del__(self) -> None:
        # a recorder dropped in the middle of a late interval gives the fast path back
        if getattr(self, "_late_interval", False):
            self._late_interval = False
            _late[0] -= 1

    def _record_corrected(self, tally: Tally, value: int) -> None:
        """Count ``value`` (µs, from the send) in ``tally.corrected`` from the intended start:
        plus the lag, and once more per slot a paced user missed, each with its own lag."""
        g = getcurrent()
        lag_us = getattr(g, "lcore_lag_us", 0)
        corrected = tally.corrected
        if corrected is None:
            if not lag_us:
                return
            # every request of the interval so far was on time: their corrected times are these
            corrected = tally.corrected = tally.histogram.copy()
            if not self._late_interval:
                # until the interval ends, every request checks whether its tally has a
                # corrected histogram to count in, late or not
                self._late_interval = True
                _late[0] += 1
        if value < 0:
            value = 0
        corrected.record(value + lag_us)
        if lag_us:
            late_one = cast(LateGreenlet, g)
            missed = late_one.lcore_missed
            if missed:
                record, interval_us = corrected.record, late_one.lcore_interval_us
                for k in range(1, missed + 1):
                    record(value + lag_us - k * interval_us)

    def _failure(self, tally: Tally, request_type: str, name: str, exception: object) -> None:
        key = (request_type, name, error_text(exception))
        tally.failures += 1
        count = self._errors.get(key)
        if count is None:
            self._errors[key] = 1
            if not isinstance(exception, str):
                self._error_objects[key] = exception
        else:
            self._errors[key] = count + 1

    def _new_tally(self, request_type: str, name: str) -> Tally:
        previous = self._previous.get((request_type, name))
        reserve = None if previous is None else previous.histogram.span()
        tally = self._entries[(request_type, name)] = Tally(Histogram(reserve))
        return tally

    def record_dropped_arrival(self, user_class: str, count: int = 1) -> None:
        """Count arrivals of ``user_class`` that were due but found no free user (never skipped silently)."""
        self._dropped_arrivals[user_class] = self._dropped_arrivals.get(user_class, 0) + count

    def record_schedule(self, user_class: str, lag_s: float, missed: int = 0) -> None:
        """Tally one scheduled task start of ``user_class``, ``lag_s`` behind its due time,
        with ``missed`` slots of a paced user's grid gone by meanwhile (``schedule_lag``'s
        sink)."""
        tally = self._schedules.get(user_class)
        if tally is None:
            tally = self._schedules[user_class] = ScheduleTally()
        tally.lag.record(int(lag_s * 1e6 + 0.5) if lag_s > 0 else 0)
        tally.missed += missed

    @property
    def dropped_arrivals(self) -> dict[str, int]:
        """The interval in progress' dropped arrivals per user class. Read it, don't keep it."""
        return self._dropped_arrivals

    @property
    def schedules(self) -> dict[str, ScheduleTally]:
        """The interval in progress' scheduled starts per user class. Read it, don't keep it."""
        return self._schedules

    def log_exception(self, message: str, traceback: str) -> None:
        """Count an exception a task raised (not a request failure)."""
        key = (_text(message, MAX_TEXT_LENGTH), _text(traceback, MAX_TEXT_LENGTH))
        self._exceptions[key] = self._exceptions.get(key, 0) + 1

    def take_delta(self, now: float | None = None) -> StatsDelta:
        """Everything recorded since the last call, as a delta; recording goes on afresh."""
        end = time.time() if now is None else now
        # the whole swap is plain assignments: no greenlet switch can land in the middle
        delta = StatsDelta(
            self._interval_start,
            end,
            self._entries,
            self._errors,
            self._exceptions,
            self._dropped_arrivals,
            self._schedules,
        )
        delta.error_objects = self._error_objects
        self._error_objects = {}
        self._previous = self._entries
        self._entries, self._errors, self._exceptions = {}, {}, {}
        self._dropped_arrivals, self._schedules = {}, {}
        self._interval_start = end
        if self._late_interval:
            self._late_interval = False
            _late[0] -= 1
        return delta

    def reset(self, now: float | None = None) -> None:
        """Drop what the interval in progress recorded."""
        self.take_delta(now)

    @property
    def entries(self) -> dict[tuple[str, str], Tally]:
        """The interval in progress, keyed by (method, name). Read it, don't keep it."""
        return self._entries

    @property
    def errors(self) -> dict[tuple[str, str, str], int]:
        return self._errors

    @property
    def exceptions(self) -> dict[tuple[str, str], int]:
        return self._exceptions

    @property
    def num_requests(self) -> int:
        return sum(t.histogram.count for t in self._entries.values())

    @property
    def num_failures(self) -> int:
        return sum(t.failures for t in self._entries.values())


class ScheduleTally:
    """The scheduled task starts of one user class during one interval: how late each one
    started (``lag``, µs, on-time ones as 0) and how many slots of paced users' grids went
    by unstarted (``missed``; counted in the corrected percentiles)."""

    __slots__ = ("lag", "missed")

    def __init__(self, lag: Histogram | None = None, missed: int = 0) -> None:
        self.lag = Histogram() if lag is None else lag
        self.missed = missed

    @property
    def starts(self) -> int:
        return self.lag.count

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScheduleTally):
            return NotImplemented
        return (self.missed, self.lag) == (other.missed, other.lag)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<ScheduleTally starts={self.starts} max_lag_us={self.lag.max} missed={self.missed}>"
        )


# -- the delta and its wire form -------------------------------------------------------------


class _Corrected(NamedTuple):
    """The corrected histograms of a delta's entries that have one, columnar as well."""

    # the entry (its position in the entry columns) of each; the name shadows tuple.index,
    # which nothing here calls
    index: list[int]  # type: ignore[assignment]
    fields: list[int]  # count, sum, min, max: 4 per corrected entry
    sizes: list[int]  # non-empty buckets per corrected entry
    buckets: list[int]  # [gap, n, gap, n, ...] of each, one after the other
    firsts: list[int]  # lowest bucket index of each (derived, not sent)
    lasts: list[int]  # highest bucket index of each (derived, not sent)


class _Columns(NamedTuple):
    """A delta's entries as the wire carries them: flat lists, no object per entry."""

    keys: list[str]  # method, name, method, name, ...
    entry_keys: list[tuple[str, str]]  # (name, method) per entry, the master's keys (derived)
    fields: list[int]  # failures, content_length, count, sum, min, max: 6 per entry
    sizes: list[int]  # non-empty buckets per entry
    buckets: list[int]  # every entry's [gap, n, gap, n, ...], one after the other
    firsts: list[int]  # lowest bucket index per entry (derived, not sent)
    lasts: list[int]  # highest bucket index per entry (derived, not sent)
    corrected: _Corrected


def _no_corrected() -> _Corrected:
    return _Corrected([], [], [], [], [], [])


class StatsDelta:
    """One interval of one worker (or of the debug runner), from ``start`` to ``end``.

    ``entries`` maps (method, name) to a ``Tally``; ``errors`` maps (method, name, error
    text) to occurrences; ``exceptions`` maps (message, traceback) to a count;
    ``dropped_arrivals`` maps a user class to its open-model arrivals that found no free
    user; ``schedules`` maps a user class to a ``ScheduleTally`` of its scheduled starts.

    The wire form is columnar, so the master checks a delta with a few C-level passes
    whatever its number of entries, and merges it without building an object per entry::

        [2, start, end,
         [method, name, ...],                                    2 per entry
         [failures, content_length, count, sum_us, min_us, max_us, ...]   6 per entry
         [buckets, ...],                                         1 per entry
         [gap, n, gap, n, ...],                                  the histograms' buckets
         [method, name, error_text, occurrences, ...],           4 per error
         [message, traceback, count, ...],                       3 per task exception
         [entry, count, sum_us, min_us, max_us, ...],            5 per corrected histogram
         [buckets, ...],                                         1 per corrected histogram
         [gap, n, gap, n, ...],                                  their buckets
         [user_class, dropped, ...],                             2 per class that dropped
         [user_class, missed, [lag histogram wire form], ...]]   3 per class with a schedule

    Only entries with a late request have a corrected histogram: the others' corrected
    response times are their response times. A delta decoded from the wire is read-only.
    """

    __slots__ = (
        "start",
        "end",
        "errors",
        "exceptions",
        "dropped_arrivals",
        "schedules",
        "error_objects",
        "_entries",
        "_columns",
    )

    def __init__(
        self,
        start: float,
        end: float,
        entries: dict[tuple[str, str], Tally] | None = None,
        errors: dict[tuple[str, str, str], int] | None = None,
        exceptions: dict[tuple[str, str], int] | None = None,
        dropped_arrivals: dict[str, int] | None = None,
        schedules: dict[str, ScheduleTally] | None = None,
    ) -> None:
        self.start = start
        self.end = end
        self._entries: dict[tuple[str, str], Tally] | None = {} if entries is None else entries
        self._columns: _Columns | None = None
        self.errors = {} if errors is None else errors
        self.exceptions = {} if exceptions is None else exceptions
        self.dropped_arrivals = {} if dropped_arrivals is None else dropped_arrivals
        self.schedules = {} if schedules is None else schedules
        # the recording process' own exception objects, by error key (not on the wire)
        self.error_objects: dict[tuple[str, str, str], object] = {}

    @property
    def entries(self) -> dict[tuple[str, str], Tally]:
        if self._entries is None:
            assert self._columns is not None
            self._entries = _entries_from_columns(self._columns)
        self._columns = None  # the caller may change the dict: columns are rebuilt from it
        return self._entries

    def columns(self) -> _Columns:
        """The entries in wire (columnar) form, computed once (the worker merges its own delta,
        then sends it)."""
        if self._columns is None:
            assert self._entries is not None
            self._columns = _columns_from_entries(self._entries)
        return self._columns

    @property
    def is_empty(self) -> bool:
        """No request, no error, no task exception, no dropped arrival, no scheduled start."""
        return not (
            self.num_requests
            or self.errors
            or self.exceptions
            or self.dropped_arrivals
            or self.schedules
        )

    @property
    def num_requests(self) -> int:
        if self._columns is not None or self._entries is None:
            return sum(self.columns().fields[2::6])
        return sum(t.histogram.count for t in self._entries.values())

    @property
    def num_failures(self) -> int:
        if self._columns is not None or self._entries is None:
            return sum(self.columns().fields[0::6])
        return sum(t.failures for t in self._entries.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StatsDelta):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"<StatsDelta {self.start:.3f}..{self.end:.3f} "
            f"requests={self.num_requests} failures={self.num_failures}>"
        )

    def to_wire(self) -> list[Any]:
        columns = self.columns()
        errors: list[Any] = []
        for (method, name, text), n in self.errors.items():
            errors += (_text(method, MAX_NAME_LENGTH), _text(name, MAX_NAME_LENGTH), text, n)
        exceptions: list[Any] = []
        for (message, tb), n in self.exceptions.items():
            exceptions += (message, tb, n)
        corrected = columns.corrected
        corrected_fields: list[int] = []
        for i, position in enumerate(corrected.index):
            corrected_fields.append(position)
            corrected_fields += corrected.fields[4 * i : 4 * i + 4]
        dropped: list[Any] = []
        for user_class, n in self.dropped_arrivals.items():
            if n > 0:
                dropped += (_text(user_class, MAX_NAME_LENGTH), min(int(n), MAX_COUNT))
        schedules: list[Any] = []
        for user_class, tally in self.schedules.items():
            if tally.starts:
                schedules += (
                    _text(user_class, MAX_NAME_LENGTH),
                    min(int(tally.missed), MAX_COUNT),
                    tally.lag.to_wire(),
                )
        return [
            WIRE_VERSION,
            self.start,
            self.end,
            columns.keys,
            columns.fields,
            columns.sizes,
            columns.buckets,
            errors,
            exceptions,
            corrected_fields,
            corrected.sizes,
            corrected.buckets,
            dropped,
            schedules,
        ]

    def encode(self) -> bytes:
        """msgpack bytes with a CRC-32 trailer, so that any flipped or missing byte is caught."""
        payload: bytes = msgpack.packb(self.to_wire(), use_bin_type=True)
        return payload + zlib.crc32(payload).to_bytes(4, "big")

    @classmethod
    def decode(cls, data: bytes) -> StatsDelta:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DeltaError(f"delta: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        payload, trailer = data[:-4], data[-4:]
        if len(data) < 5 or zlib.crc32(payload).to_bytes(4, "big") != trailer:
            raise DeltaError("delta: checksum mismatch (truncated or corrupted)")
        try:
            obj = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
        except Exception as e:  # msgpack raises several types for bad input
            raise DeltaError(f"delta: not msgpack ({type(e).__name__}: {e})") from None
        return cls.from_wire(obj)

    @classmethod
    def from_wire(cls, obj: Any) -> StatsDelta:
        """Check ``obj`` completely, then build the delta; ``DeltaError`` if anything is off."""
        if not _is_list(obj) or len(obj) != 14:
            raise DeltaError("delta: expected a list of 14 fields")
        (version, start, end, keys, fields, sizes, buckets, errors, exceptions,
         c_fields, c_sizes, c_buckets, dropped, schedules) = obj  # fmt: skip
        if version != WIRE_VERSION or type(version) is not int:
            raise DeltaError(f"delta: unsupported wire version {version!r}")
        if not (_is_time(start) and _is_time(end) and start <= end):
            raise DeltaError("delta: bad interval timestamps")
        columns = _check_columns(keys, fields, sizes, buckets)
        columns = columns._replace(
            corrected=_check_corrected(columns, c_fields, c_sizes, c_buckets)
        )
        failures = dict(zip(zip(keys[0::2], keys[1::2], strict=True), fields[0::6], strict=True))
        parsed_errors = _check_errors(errors, failures)
        parsed_exceptions = _check_exceptions(exceptions)
        delta = cls(
            float(start),
            float(end),
            None,
            parsed_errors,
            parsed_exceptions,
            _check_dropped(dropped),
            _check_schedules(schedules),
        )
        delta._entries = None
        delta._columns = columns
        return delta


def _is_list(obj: Any) -> bool:
    return type(obj) is list or type(obj) is tuple


def _is_time(value: Any) -> bool:
    return (
        (type(value) is float or type(value) is int) and 0 <= value < 1e12 and math.isfinite(value)
    )


def _all_strings(values: Sequence[Any], limit: int) -> bool:
    return set(map(type, values)) <= {str} and (not values or max(map(len, values)) <= limit)


def _check_columns(keys: Any, fields: Any, sizes: Any, buckets: Any) -> _Columns:
    """Validate the entry columns with C-level passes over whole columns, not per entry."""
    if not (_is_list(keys) and _is_list(fields) and _is_list(sizes) and _is_list(buckets)):
        raise DeltaError("delta: entry columns must be lists")
    n = len(sizes)
    if n > MAX_ENTRIES or len(keys) != 2 * n or len(fields) != 6 * n:
        raise DeltaError("delta: entry columns disagree in length")
    if not n:
        if buckets:
            raise DeltaError("delta: buckets without entries")
        return _Columns([], [], [], [], [], [], [], _no_corrected())
    keys, fields, sizes, buckets = list(keys), list(fields), list(sizes), list(buckets)
    if not _all_strings(keys, MAX_NAME_LENGTH):
        raise DeltaError("delta: entry method and name must be strings")
    entry_keys = list(zip(keys[1::2], keys[0::2], strict=True))
    if len(set(entry_keys)) != n:
        raise DeltaError("delta: an entry appears twice")
    if _int_sum(sizes) is None or _int_sum(fields) is None or _int_sum(buckets) is None:
        raise DeltaError("delta: entry fields must be integers")
    failures, lengths, counts = fields[0::6], fields[1::6], fields[2::6]
    sums, lows, highs = fields[3::6], fields[4::6], fields[5::6]
    if min(failures) < 0 or min(lengths) < 0 or max(lengths) > MAX_CONTENT_LENGTH:
        raise DeltaError("delta: negative counts")
    if not all(map(le, failures, counts)):
        raise DeltaError("delta: more failures than requests, or min above max")
    firsts, lasts = _check_histograms(counts, sums, lows, highs, sizes, buckets)
    return _Columns(keys, entry_keys, fields, sizes, buckets, firsts, lasts, _no_corrected())


def _check_histograms(
    counts: list[int],
    sums: list[int],
    lows: list[int],
    highs: list[int],
    sizes: list[int],
    buckets: list[int],
) -> tuple[list[int], list[int]]:
    """Validate histograms in columns (integers already checked) with C-level passes;
    returns their lowest and highest bucket indices."""
    pairs = sum(sizes)
    if 2 * pairs != len(buckets) or min(sizes) < 1 or max(sizes) > N_BUCKETS:
        raise DeltaError("delta: bucket sizes disagree with the buckets")
    if min(buckets) < 1:  # every gap and every bucket count is at least 1
        raise DeltaError("delta: empty or unordered buckets")
    if min(counts) < 1 or min(lows) < 0:
        raise DeltaError("delta: negative counts")
    if max(counts) > MAX_COUNT or max(highs) > MAX_VALUE_US:
        raise DeltaError("delta: entry counts out of range")
    if not all(map(le, lows, highs)):
        raise DeltaError("delta: more failures than requests, or min above max")
    if not (
        all(map(le, map(mul, counts, lows), sums)) and all(map(le, sums, map(mul, counts, highs)))
    ):
        raise DeltaError("delta: entry response time sum out of range")
    # per-entry sums from running totals over all entries: C-level, no loop per entry
    ends = list(accumulate(sizes))
    starts = [0, *ends[:-1]]
    running = list(accumulate(buckets[1::2], initial=0))
    if list(map(sub, map(running.__getitem__, ends), map(running.__getitem__, starts))) != counts:
        raise DeltaError("delta: bucket counts do not add up to the request counts")
    gaps = buckets[0::2]
    running = list(accumulate(gaps, initial=0))
    # each entry's gaps add up to its last bucket index + 1; its first gap is first index + 1
    lasts = list(map(sub, map(running.__getitem__, ends), map(running.__getitem__, starts)))
    if max(lasts) > N_BUCKETS:
        raise DeltaError("delta: bucket index out of range")
    # (min and max are not checked against their buckets: that would cost a Python call per
    # entry, and a wrong one can only skew the quantiles of its own entry, which clamp to it)
    firsts = list(map(sub, map(gaps.__getitem__, starts), repeat(1)))
    lasts = list(map(sub, lasts, repeat(1)))
    return firsts, lasts


def _check_corrected(columns: _Columns, raw: Any, sizes: Any, buckets: Any) -> _Corrected:
    """Validate the corrected histograms against the entries they belong to."""
    if not (_is_list(raw) and _is_list(sizes) and _is_list(buckets)):
        raise DeltaError("delta: corrected columns must be lists")
    n = len(sizes)
    if len(raw) != 5 * n or n > len(columns.sizes):
        raise DeltaError("delta: corrected columns disagree in length")
    if not n:
        if buckets:
            raise DeltaError("delta: corrected buckets without entries")
        return _no_corrected()
    raw, sizes, buckets = list(raw), list(sizes), list(buckets)
    if _int_sum(raw) is None or _int_sum(sizes) is None or _int_sum(buckets) is None:
        raise DeltaError("delta: corrected fields must be integers")
    index = raw[0::5]
    if min(index) < 0 or max(index) >= len(columns.sizes):
        raise DeltaError("delta: a corrected histogram of no entry")
    if not all(map(lt, index, index[1:])):
        raise DeltaError("delta: corrected histograms out of order or twice")
    counts, sums, lows, highs = raw[1::5], raw[2::5], raw[3::5], raw[4::5]
    # a late request counts at least once, and a missed slot of pacing once more
    if not all(map(le, map(columns.fields[2::6].__getitem__, index), counts)):
        raise DeltaError("delta: a corrected histogram with fewer requests than its entry")
    firsts, lasts = _check_histograms(counts, sums, lows, highs, sizes, buckets)
    fields = [0] * (4 * n)
    fields[0::4], fields[1::4], fields[2::4], fields[3::4] = counts, sums, lows, highs
    return _Corrected(index, fields, sizes, buckets, firsts, lasts)


def _check_dropped(raw: Any) -> dict[str, int]:
    if not _is_list(raw) or len(raw) % 2 or len(raw) > 2 * MAX_USER_CLASSES:
        raise DeltaError("delta: dropped arrivals must be a list of 2 fields each")
    if not raw:
        return {}
    names, counts = raw[0::2], raw[1::2]
    if not (
        _all_strings(names, MAX_NAME_LENGTH)
        and _int_sum(counts) is not None
        and min(counts) >= 1
        and max(counts) <= MAX_COUNT
    ):
        raise DeltaError("delta: a dropped-arrival count has a bad field")
    dropped = dict(zip(names, counts, strict=True))
    if len(dropped) != len(counts):
        raise DeltaError("delta: a user class's dropped arrivals appear twice")
    return dropped


def _check_schedules(raw: Any) -> dict[str, ScheduleTally]:
    if not _is_list(raw) or len(raw) % 3 or len(raw) > 3 * MAX_USER_CLASSES:
        raise DeltaError("delta: schedules must be a list of 3 fields each")
    if not raw:
        return {}
    names, missed, lags = raw[0::3], raw[1::3], raw[2::3]
    if not (
        _all_strings(names, MAX_NAME_LENGTH)
        and _int_sum(missed) is not None
        and min(missed) >= 0
        and max(missed) <= MAX_COUNT
    ):
        raise DeltaError("delta: a schedule has a bad field")
    schedules: dict[str, ScheduleTally] = {}
    for name, n, lag in zip(names, missed, lags, strict=True):
        try:
            histogram = Histogram.from_wire(lag)
        except HistogramError as e:
            raise DeltaError(f"delta: a schedule's lags: {e}") from None
        if not histogram.count or histogram.max > MAX_TRACKABLE_US:
            raise DeltaError("delta: a schedule without starts, or lags out of range")
        schedules[name] = ScheduleTally(histogram, n)
    if len(schedules) != len(names):
        raise DeltaError("delta: a user class's schedule appears twice")
    return schedules


def _int_sum(values: list[Any]) -> int | None:
    """The sum of ``values`` if they are all integers, else None: one fast C-level pass.

    A float anywhere makes the sum a float; anything else not a number raises TypeError.
    """
    try:
        total = sum(values)
    except TypeError:
        return None
    return total if type(total) is int else None


def _check_errors(
    raw: Any, failures: dict[tuple[str, str], int]
) -> dict[tuple[str, str, str], int]:
    if not _is_list(raw) or len(raw) % 4 or len(raw) > 4 * MAX_ERRORS:
        raise DeltaError("delta: errors must be a list of 4 fields each")
    if not raw:
        if any(failures.values()):
            raise DeltaError("delta: failures without errors")
        return {}
    methods, names, texts, occurrences = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
    if not (
        _all_strings(methods, MAX_NAME_LENGTH)
        and _all_strings(names, MAX_NAME_LENGTH)
        and _all_strings(texts, MAX_TEXT_LENGTH)
        and _int_sum(occurrences) is not None
        and min(occurrences) >= 1
        and max(occurrences) <= MAX_COUNT
    ):
        raise DeltaError("delta: an error has a bad field")
    errors = dict(zip(zip(methods, names, texts, strict=True), occurrences, strict=True))
    if len(errors) != len(occurrences):
        raise DeltaError("delta: an error appears twice")
    # every failure is one occurrence of an error of its entry, and nothing else is
    per_entry: dict[tuple[str, str], int] = {}
    for (method, name, _), n in errors.items():
        per_entry[(method, name)] = per_entry.get((method, name), 0) + n
    if per_entry != {key: n for key, n in failures.items() if n}:
        raise DeltaError("delta: errors do not add up to the entries' failures")
    return errors


def _check_exceptions(raw: Any) -> dict[tuple[str, str], int]:
    if not _is_list(raw) or len(raw) % 3 or len(raw) > 3 * MAX_ERRORS:
        raise DeltaError("delta: exceptions must be a list of 3 fields each")
    if not raw:
        return {}
    messages, tracebacks, counts = raw[0::3], raw[1::3], raw[2::3]
    if not (
        _all_strings(messages, MAX_TEXT_LENGTH)
        and _all_strings(tracebacks, MAX_TEXT_LENGTH)
        and _int_sum(counts) is not None
        and min(counts) >= 1
        and max(counts) <= MAX_COUNT
    ):
        raise DeltaError("delta: an exception has a bad field")
    exceptions = dict(zip(zip(messages, tracebacks, strict=True), counts, strict=True))
    if len(exceptions) != len(counts):
        raise DeltaError("delta: an exception appears twice")
    return exceptions


def _columns_from_entries(entries: dict[tuple[str, str], Tally]) -> _Columns:
    columns = _Columns([], [], [], [], [], [], [], _no_corrected())
    keys, entry_keys, fields, sizes, buckets, firsts, lasts, corrected = columns
    for (method, name), tally in entries.items():
        histogram = tally.histogram
        if not histogram.count:
            continue
        pairs, first, last = histogram._wire_pairs_and_span()
        # whatever a locustfile passed, send what the master accepts (once per entry here,
        # rather than per request in record)
        method, name = _text(method, MAX_NAME_LENGTH), _text(name, MAX_NAME_LENGTH)
        length = int(tally.content_length)
        if tally.corrected is not None:
            _add_corrected(corrected, len(sizes), tally.corrected)
        keys += (method, name)
        entry_keys.append((name, method))
        fields += (
            min(tally.failures, histogram.count),
            0 if length < 0 else min(length, MAX_CONTENT_LENGTH),
            histogram.count,
            histogram.sum,
            histogram.min,
            histogram.max,
        )
        sizes.append(len(pairs) // 2)
        buckets += pairs
        firsts.append(first)
        lasts.append(last)
    return columns


def _add_corrected(corrected: _Corrected, position: int, histogram: Histogram) -> None:
    pairs, first, last = histogram._wire_pairs_and_span()
    corrected.index.append(position)
    corrected.fields.extend((histogram.count, histogram.sum, histogram.min, histogram.max))
    corrected.sizes.append(len(pairs) // 2)
    corrected.buckets.extend(pairs)
    corrected.firsts.append(first)
    corrected.lasts.append(last)


def _entries_from_columns(columns: _Columns) -> dict[tuple[str, str], Tally]:
    entries: dict[tuple[str, str], Tally] = {}
    keys, fields, sizes, buckets = (
        iter(columns.keys),
        iter(columns.fields),
        columns.sizes,
        columns.buckets,
    )
    position = 0
    for method, name, failures, length, count, total, low, high, size in zip(
        keys, keys, fields, fields, fields, fields, fields, fields, sizes, strict=True
    ):
        pairs = buckets[position : position + 2 * size]
        position += 2 * size
        histogram = Histogram.from_parts(count, total, low, high, pairs)
        entries[(method, name)] = Tally(histogram, failures, length)
    corrected = columns.corrected
    if corrected.index:
        tallies = list(entries.values())
        position = 0
        for i, (entry, size) in enumerate(zip(corrected.index, corrected.sizes, strict=True)):
            count, total, low, high = corrected.fields[4 * i : 4 * i + 4]
            pairs = corrected.buckets[position : position + 2 * size]
            position += 2 * size
            tallies[entry].corrected = Histogram.from_parts(count, total, low, high, pairs)
    return entries
