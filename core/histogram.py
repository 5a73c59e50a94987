"""A log-linear response-time histogram in integer microseconds (HDR-style).

Values below 128 µs have a bucket each; above that, every power of two is split into 64
buckets, so a bucket is never wider than 1/64 of its lower bound and the midpoint reported for
a quantile is within 1/128 (0.8 %) of any value in it. The top bucket ends at 2**32 - 1 µs
(71 minutes); larger values are counted there, while ``min``, ``max`` and ``sum`` stay exact.

Counts live in one flat list covering only the octaves seen so far (64 buckets each, grown on
demand), so a typical histogram takes a few KiB and none takes more than 1,728 buckets. A
histogram decoded from the wire stays in its sparse wire form until something needs it dense:
the master merges it bucket by bucket without ever building the dense form.

No gevent, no asyncio: the worker and the master share this module.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate, compress, repeat
from operator import add, sub
from typing import Any

EXACT_BITS = 7
"""Values below ``1 << EXACT_BITS`` µs are counted exactly."""
_OCTAVE = 1 << (EXACT_BITS - 1)  # buckets per power of two above the exact range (64)
TOP_SHIFT = 25  # the shift of the highest octave: values up to 2**32 - 1
MAX_TRACKABLE_US = (1 << (EXACT_BITS + TOP_SHIFT)) - 1
N_BUCKETS = (TOP_SHIFT << (EXACT_BITS - 1)) + (1 << EXACT_BITS)  # 1728
TOP_INDEX = N_BUCKETS - 1
MAX_COUNT = 1 << 48
"""A sanity bound for decoded counts; no real run comes near it."""
MAX_VALUE_US = 1 << 62
"""Larger values (146,000 years) are recorded as this, so sums stay sane."""
_NO_MIN = 1 << 64  # larger than any value a test records; stands for "no sample yet"
_POSITIONS = tuple(range(N_BUCKETS))


class HistogramError(ValueError):
    """A wire form that is not a valid histogram."""


def bucket_index(value_us: int) -> int:
    """The index of the bucket that counts ``value_us`` (negative values count as 0)."""
    if value_us < 0:
        return 0
    shift = value_us.bit_length() - EXACT_BITS
    if shift <= 0:
        return value_us
    if shift > TOP_SHIFT:
        return TOP_INDEX
    return (shift << (EXACT_BITS - 1)) + (value_us >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The smallest and largest value (µs, inclusive) that land in bucket ``index``."""
    if not 0 <= index < N_BUCKETS:
        raise IndexError(f"bucket index {index} out of range")
    if index < 1 << EXACT_BITS:
        return index, index
    shift = (index >> (EXACT_BITS - 1)) - 1
    low = (index - (shift << (EXACT_BITS - 1))) << shift
    return low, low + (1 << shift) - 1


def quantile_rank(q: float, n: int) -> int:
    """The 1-based rank of the sample reported as quantile ``q`` of ``n`` (nearest rank).

    ``q * n`` is rounded to 9 significant digits first, so that e.g. 0.95 * 100 is rank 95
    and not 96 because of binary floating point.
    """
    rank = math.ceil(float(f"{q * n:.9g}"))
    return 1 if rank < 1 else n if rank > n else rank


class Histogram:
    """Response times in µs: exact count, sum, min and max, and log-linear buckets.

    ``record`` is the hot path of every request. ``merge`` adds another histogram's counts;
    ``subtract`` removes an earlier snapshot of this one (for figures over a sliding window).
    """

    __slots__ = ("count", "sum", "_min", "_max", "_base", "_counts", "_sparse")

    def __init__(self, reserve: tuple[int, int] | None = None) -> None:
        """``reserve``: bucket indices ``(low, high)`` to allocate at once, e.g. the
        ``span()`` of an earlier histogram of the same thing, so that recording never grows."""
        self.count = 0
        self.sum = 0
        self._min = _NO_MIN
        self._max = -1
        self._base = 0  # the bucket index of _counts[0], a multiple of 64
        self._counts: list[int] | None = []  # None while the buckets are in _sparse
        self._sparse: list[int] | None = None  # [gap, n, gap, n, ...] as on the wire
        if reserve is not None:
            low, high = reserve
            if 0 <= low < high <= N_BUCKETS:
                self._dense(low, high, margin=0)

    def record(self, value_us: int) -> None:
        """Count one value in µs (an int; negative values count as 0, huge ones as
        ``MAX_VALUE_US``)."""
        if value_us < 0:
            value_us = 0
        shift = value_us.bit_length() - EXACT_BITS
        if shift <= 0:
            index = value_us
        elif shift <= TOP_SHIFT:
            index = (shift << 6) + (value_us >> shift)
        else:
            index = TOP_INDEX
            if value_us > MAX_VALUE_US:
                value_us = MAX_VALUE_US
        self.count += 1
        self.sum += value_us
        if value_us < self._min:
            self._min = value_us
        if value_us > self._max:
            self._max = value_us
        offset = index - self._base
        if offset >= 0:
            try:
                self._counts[offset] += 1  # type: ignore[index]
                return
            except (IndexError, TypeError):  # past the allocated octaves, or still sparse
                pass
        self._add_dense(((index, 1),))

    @property
    def min(self) -> int:
        """The smallest value recorded (µs), 0 when empty."""
        return self._min if self.count else 0

    @property
    def max(self) -> int:
        """The largest value recorded (µs), 0 when empty."""
        return self._max if self.count else 0

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def __bool__(self) -> bool:
        return self.count > 0

    # -- combining -------------------------------------------------------------------------

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s samples to this histogram."""
        if not other.count:
            return
        sparse = other._sparse
        if sparse is not None:
            first, last = sparse[0] - 1, sum(sparse[0::2]) - 1
            self.merge_wire(other.count, other.sum, other._min, other._max, first, last, sparse)
            return
        self.count += other.count
        self.sum += other.sum
        if other._min < self._min:
            self._min = other._min
        if other._max > self._max:
            self._max = other._max
        counts = other._counts
        assert counts is not None
        low, high = other._base, other._base + len(counts)
        mine = self._dense(low, high)
        start = low - self._base
        # one C-level pass over the other's octaves instead of a Python loop per bucket
        mine[start : start + len(counts)] = map(add, mine[start : start + len(counts)], counts)

    def merge_wire(
        self,
        count: int,
        total: int,
        low: int,
        high: int,
        first: int,
        last: int,
        pairs: Sequence[int],
    ) -> None:
        """Add samples given in (already validated) wire form: the master's merge path.

        ``pairs`` is ``[gap, n, gap, n, ...]`` as ``to_wire`` writes them after the header,
        ``first`` and ``last`` the lowest and highest bucket index they touch.
        """
        self.count += count
        self.sum += total
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high
        mine = self._counts
        base = self._base
        if mine is None or type(mine) is not list or first < base or last >= base + len(mine):
            mine = self._dense(first, last + 1)
            base = self._base
        index = -1 - base
        values = iter(pairs)
        for gap, n in zip(values, values, strict=True):
            index += gap
            mine[index] += n

    def subtract(self, earlier: Histogram) -> None:
        """Remove ``earlier`` (a snapshot of this histogram) from it, leaving what came since.

        ``count``, ``sum`` and the buckets stay exact; ``min`` and ``max`` become estimates
        within the quantile error bound. Raises ``ValueError``, changing nothing, if
        ``earlier`` has a sample this histogram has not.
        """
        if not earlier.count:
            return
        indices, counts = earlier._nonzero_lists()
        mine = self._dense(indices[0], indices[-1] + 1)
        base = self._base
        if (
            earlier.count > self.count
            or earlier.sum > self.sum
            or any(mine[index - base] < count for index, count in zip(indices, counts, strict=True))
        ):
            raise ValueError("subtract: not an earlier snapshot of this histogram")
        for index, count in zip(indices, counts, strict=True):
            mine[index - base] -= count
        self.count -= earlier.count
        self.sum -= earlier.sum
        if not self.count:
            self.reset()
            return
        # the exact min and max of what is left are unknown: take the middle of where each
        # can be (its bucket, narrowed by the old exact bounds), within the quantile bound
        left = list(compress(_POSITIONS[base : base + len(mine)], mine))
        old_min, old_max = self._min, self._max
        low, high = bucket_bounds(left[0])
        self._min = (max(low, old_min) + min(high, old_max) + 1) >> 1
        low, high = bucket_bounds(left[-1])
        self._max = max((max(low, old_min) + min(high, old_max) + 1) >> 1, self._min)

    def copy(self) -> Histogram:
        new = Histogram.__new__(Histogram)
        new.count, new.sum, new._min, new._max = self.count, self.sum, self._min, self._max
        new._base = self._base
        new._counts = None if self._counts is None else list(self._counts)
        new._sparse = self._sparse  # never mutated in place: sharing is safe
        return new

    def compact_copy(self) -> Histogram:
        """A copy whose buckets are packed machine integers: for snapshots kept a while.

        It takes 8 bytes a bucket where a list of large counts takes about 40. Recording into
        it works, just more slowly.
        """
        new = self.copy()
        if new._counts is not None:
            new._counts = array("Q", new._counts)  # type: ignore[assignment]
        return new

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def span(self) -> tuple[int, int] | None:
        """The bucket indices ``(low, high)`` allocated, for ``Histogram(reserve=...)``."""
        if not self._counts:
            return None
        return self._base, self._base + len(self._counts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} min={self.min} max={self.max} sum={self.sum}>"

    # -- reading ---------------------------------------------------------------------------

    def quantile(self, q: float) -> int:
        """The value (µs) at quantile ``q`` in [0, 1], within 1/128 of the exact sample.

        The exact sample is the one at rank ``quantile_rank(q, count)``; 0 when empty.
        """
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[int]:
        """``quantile`` for several points, in one pass."""
        n = self.count
        if not n:
            return [0 for _ in qs]
        indices, counts = self._nonzero_lists()
        cumulative = list(accumulate(counts))
        out = []
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile {q!r} is not in [0, 1]")
            rank = quantile_rank(q, n)
            if rank == n:
                out.append(self._max)
            elif rank == 1:
                out.append(self._min)
            else:
                low, high = bucket_bounds(indices[bisect_left(cumulative, rank)])
                mid = (low + high + 1) >> 1
                out.append(self._min if mid < self._min else self._max if mid > self._max else mid)
        return out

    def buckets(self) -> Iterator[tuple[int, int, int]]:
        """``(low_us, high_us, count)`` of every non-empty bucket, in increasing order."""
        for index, count in self._nonzero():
            low, high = bucket_bounds(index)
            yield low, high, count

    def count_at_or_below(self, bounds_us: Sequence[int]) -> list[int]:
        """For each bound (increasing, µs), how many samples are at or below it.

        Exact where a bound ends a bucket; otherwise the bucket holding the bound counts as
        below it. Meant for exporting as cumulative buckets (Prometheus ``le``).
        """
        out = []
        total = 0
        pairs = iter(self._nonzero())
        pending = next(pairs, None)
        for bound in bounds_us:
            limit = bucket_index(bound)
            while pending is not None and pending[0] <= limit:
                total += pending[1]
                pending = next(pairs, None)
            out.append(total)
        return out

    # -- wire form -------------------------------------------------------------------------

    def to_wire(self) -> list[int]:
        """``[count, sum, min, max, gap, n, gap, n, ...]``: msgpack-able, non-empty buckets only.

        Each gap is the distance from the previous non-empty bucket's index (the first from
        -1), so every gap is at least 1 and most fit a one-byte integer on the wire.
        """
        if not self.count:
            return [0, 0, 0, 0]
        return [self.count, self.sum, self._min, self._max, *self.wire_pairs()]

    def wire_pairs(self) -> list[int]:
        """The ``[gap, n, gap, n, ...]`` part of ``to_wire``."""
        return self._wire_pairs_and_span()[0]

    def _wire_pairs_and_span(self) -> tuple[list[int], int, int]:
        """``wire_pairs()`` and the lowest and highest non-empty bucket index."""
        indices, counts = self._nonzero_lists()
        if not indices:
            return [], -1, -1
        if self._sparse is not None:
            return list(self._sparse), indices[0], indices[-1]
        pairs = [0] * (2 * len(counts))
        pairs[0::2] = map(sub, indices, [-1, *indices])
        pairs[1::2] = counts
        return pairs, indices[0], indices[-1]

    @classmethod
    def from_wire(cls, obj: Any) -> Histogram:
        """The inverse of ``to_wire``; raises ``HistogramError`` unless ``obj`` is consistent."""
        if type(obj) is not list and type(obj) is not tuple:
            raise HistogramError(f"histogram: expected a list, got {type(obj).__name__}")
        size = len(obj)
        if size < 4 or size % 2 or size > 4 + 2 * N_BUCKETS:
            raise HistogramError(f"histogram: bad length {size}")
        if not all_ints(obj):
            raise HistogramError("histogram: every field must be an integer")
        count, total, low, high = obj[0], obj[1], obj[2], obj[3]
        if size == 4:
            if count or total or low or high:
                raise HistogramError("histogram: counts without buckets")
            return cls()
        gaps, counts = obj[4::2], obj[5::2]
        last = sum(gaps) - 1
        if min(gaps) < 1 or last >= N_BUCKETS:
            raise HistogramError("histogram: bucket indices out of order or out of range")
        if min(counts) < 1 or sum(counts) != count or count > MAX_COUNT:
            raise HistogramError("histogram: bucket counts do not add up")
        if not 0 <= low <= high or bucket_index(low) != gaps[0] - 1 or bucket_index(high) != last:
            raise HistogramError("histogram: min/max disagree with the buckets")
        if high > MAX_VALUE_US or not low * count <= total <= high * count:
            raise HistogramError("histogram: sum out of range")
        return cls.from_parts(count, total, low, high, list(obj[4:]))

    @classmethod
    def from_parts(cls, count: int, total: int, low: int, high: int, pairs: list[int]) -> Histogram:
        """A histogram over validated wire parts (``pairs`` is kept, not copied)."""
        new = cls()
        if count:
            new.count, new.sum, new._min, new._max = count, total, low, high
            new._counts = None
            new._sparse = pairs
        return new

    # -- internals -------------------------------------------------------------------------

    def _nonzero(self) -> Iterator[tuple[int, int]]:
        return zip(*self._nonzero_lists(), strict=True)

    def _nonzero_lists(self) -> tuple[list[int], list[int]]:
        """(indices, counts) of the non-empty buckets."""
        if self._sparse is not None:
            sparse = self._sparse
            return list(map(sub, accumulate(sparse[0::2]), repeat(1))), sparse[1::2]
        counts = self._counts
        assert counts is not None
        base = self._base
        if self.count:
            # scan only from min's bucket to max's: they hold every count unless an unchecked
            # wire form lied about min or max, which the sum below catches
            low, high = bucket_index(self._min), bucket_index(self._max) + 1
            if base <= low < high <= base + len(counts):
                indices, values = _scan(counts, base, low, high)
                if sum(values) == self.count:
                    return indices, values
        return _scan(counts, base, base, base + len(counts))

    def _dense(self, low: int, high: int, margin: int = 3) -> list[int]:
        """The dense counts, allocated to cover bucket indices ``[low, high)`` at least.

        A first allocation takes ``margin`` octaves more on each side, a growth one more on
        the side that grows: growing copies the list, so it should be rare.
        """
        if self._sparse is not None:
            indices, nonzero = self._nonzero_lists()
            self._sparse = None
            self._counts = []
            low, high = min(low, indices[0]), max(high, indices[-1] + 1)
            mine = self._dense(low, high, margin)
            base = self._base
            for index, count in zip(indices, nonzero, strict=True):
                mine[index - base] += count
            return mine
        counts = self._counts
        assert counts is not None
        low &= ~(_OCTAVE - 1)
        high = (high + _OCTAVE - 1) & ~(_OCTAVE - 1)
        if not counts:
            self._base = low = max(0, low - margin * _OCTAVE)
            high = min(N_BUCKETS, high + margin * _OCTAVE)
            self._counts = counts = [0] * (high - low)
            return counts
        base, end = self._base, self._base + len(counts)
        if low >= base and high <= end:
            if type(counts) is not list:  # a compact copy being written to
                self._counts = counts = list(counts)
            return counts
        low = base if low >= base else max(0, low - _OCTAVE)
        high = end if high <= end else min(N_BUCKETS, high + _OCTAVE)
        self._counts = counts = [0] * (base - low) + list(counts) + [0] * (high - end)
        self._base = low
        return counts

    def _add_dense(self, pairs: Any) -> None:
        """Add ``(index, count)`` pairs (increasing indices) to the buckets, growing them."""
        if not isinstance(pairs, tuple):
            pairs = tuple(pairs)
        mine = self._dense(pairs[0][0], pairs[-1][0] + 1)
        base = self._base
        for index, count in pairs:
            mine[index - base] += count


def _scan(counts: Sequence[int], base: int, low: int, high: int) -> tuple[list[int], list[int]]:
    """Indices and counts of the non-empty buckets in ``[low, high)``; ``counts[0]`` is
    bucket ``base``."""
    # slicing ready-made positions allocates no int per bucket, as a range would; gathering
    # the few non-zero counts beats a second pass over the whole range
    indices = list(compress(_POSITIONS[low:high], counts[low - base : high - base]))
    return indices, list(map(counts.__getitem__, map(sub, indices, repeat(base))))


def all_ints(values: Sequence[Any]) -> bool:
    """Whether every item is an ``int`` (not a bool): one C-level pass."""
    return set(map(type, values)) <= {int}
