"""The open model's schedule: when each arrival is due and which worker runs it. Pure: no I/O.

The test's arrivals are numbered k = 0, 1, 2, ... A *segment* says that from time ``start`` on
the arrival position advances at ``rate`` per second from ``position``: arrival k (k at or past
``position``) is due at ``start + (k - position) / rate``. A new segment begins where the
previous one stands at its start, so a change of rate neither skips nor repeats an arrival, and
the count over any span is the integral of the rate to within one.

Workers share the arrivals by index: of ``slots`` workers, the one in slot ``s`` runs arrivals
``k ≡ s (mod slots)``. The merged schedule is then as even as a single worker's (each arrival
``1 / rate`` after the previous), at any rate, also below the number of workers. A new segment
takes over at arrival ``ceil(position)`` (its *boundary*): the arrivals before it are the old
segment's, those from it on the new one's — an integer boundary, exact whatever the floats.

- ``ArrivalPlan`` (master): the segments so far, the workers and the ceiling of users;
  ``change(at, ...)`` starts a new segment at ``at`` (the master passes a time a little ahead,
  so every worker has it before it applies); ``shares()`` is what each worker is told.
- ``WorkerSchedule`` (worker): its shares in order; ``next_due()`` / ``pop()`` walk its
  arrivals, each time computed from its segment's start and the arrival's index (no
  accumulated sleeps, no drift); ``skip_until(t)`` passes over slots left unused (a rate cap).
- ``ClassMix``: which user class arrival k belongs to, by weight (exact shares over any
  window to within a few arrivals, on every worker, whatever the slots).

The master's clock is the wall clock (workers on other boxes share it); a worker converts a
share's ``start`` to its own monotonic clock once, on receipt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

__all__ = ["ArrivalPlan", "ClassMix", "Segment", "Share", "WorkerSchedule", "split_ceiling"]

# the golden ratio's fractional part: k * _PHI mod 1 spreads any arithmetic progression of k
# evenly over [0, 1), so every worker's arrivals, not just all of them, follow the weights
_PHI = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Segment:
    """From ``start`` on, the arrival position advances at ``rate``/s from ``position``."""

    start: float
    position: float
    rate: float

    def __post_init__(self) -> None:
        for name in ("start", "position", "rate"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"segment {name} must be finite, not {value!r}")
        if self.rate < 0 or self.position < 0:
            raise ValueError(f"segment rate and position must be >= 0: {self}")

    @property
    def boundary(self) -> int:
        """The first arrival index this segment schedules."""
        return math.ceil(self.position)

    def position_at(self, t: float) -> float:
        return self.position + self.rate * max(0.0, t - self.start)

    def due(self, k: int) -> float:
        """When arrival ``k`` (``k >= boundary``, ``rate > 0``) is due."""
        return self.start + (k - self.position) / self.rate


@dataclass(frozen=True)
class Share:
    """One worker's part of a segment: arrivals ``k ≡ slot (mod slots)``; none if ``slots == 0``."""

    segment: Segment
    slot: int = 0
    slots: int = 1

    def __post_init__(self) -> None:
        if self.slots < 0 or (self.slots and not 0 <= self.slot < self.slots):
            raise ValueError(f"slot {self.slot} of {self.slots} is out of range")

    def first_from(self, k: int) -> int | None:
        """This share's first arrival index at or after ``k``, or None if it has none."""
        if not self.slots or self.segment.rate <= 0:
            return None
        return k + (self.slot - k) % self.slots


def split_ceiling(ceiling: int, workers: int) -> list[int]:
    """``ceiling`` users split over ``workers`` as evenly as integers allow, the larger first."""
    if workers <= 0:
        return []
    base, extra = divmod(max(0, ceiling), workers)
    return [base + (i < extra) for i in range(workers)]


class ArrivalPlan:
    """The master's side: segments, worker slots and the ceiling split (see the module doc).

    Workers whose part of the ceiling is zero (fewer users than workers) get no arrivals: the
    others share them evenly.
    """

    def __init__(self, rate: float, ceiling: int, workers: Sequence[str], at: float) -> None:
        self.segments: list[Segment] = [Segment(at, 0.0, rate)]
        self.ceiling = ceiling
        self.workers: tuple[str, ...] = tuple(workers)

    @property
    def segment(self) -> Segment:
        return self.segments[-1]

    @property
    def rate(self) -> float:
        return self.segment.rate

    def position_at(self, t: float) -> float:
        """Arrivals due before ``t`` in all (fractional: the next one is ``ceil`` of it)."""
        for segment in reversed(self.segments):
            if t >= segment.start:
                return segment.position_at(t)
        return self.segments[0].position

    def change(
        self,
        at: float,
        *,
        rate: float | None = None,
        workers: Sequence[str] | None = None,
        ceiling: int | None = None,
    ) -> None:
        """A new segment from ``at`` (never before the current one's start)."""
        at = max(at, self.segment.start)
        position = self.position_at(at)
        if workers is not None:
            self.workers = tuple(workers)
        if ceiling is not None:
            self.ceiling = ceiling
        new = Segment(at, position, self.rate if rate is None else rate)
        if at == self.segment.start:
            self.segments[-1] = new  # replaces one that has not started: same boundary
        else:
            self.segments.append(new)
        del self.segments[:-2]  # a worker only ever needs the current and the next

    def shares(self) -> dict[str, tuple[Share, int]]:
        """Worker id -> (its share of the current segment, its part of the ceiling)."""
        parts = split_ceiling(self.ceiling, len(self.workers))
        active = [w for w, n in zip(self.workers, parts, strict=True) if n > 0]
        slot_of = {w: i for i, w in enumerate(active)}
        out: dict[str, tuple[Share, int]] = {}
        for worker, part in zip(self.workers, parts, strict=True):
            slot = slot_of.get(worker)
            share = Share(self.segment, slot, len(active)) if slot is not None else Share(self.segment, 0, 0)
            out[worker] = (share, part)
        return out


class WorkerSchedule:
    """The worker's side: its arrivals, in order, across the shares it was given.

    A share received late — after its boundary, when this worker has already run arrivals of
    the old one past it — takes over after the last arrival run, so none is run twice here.
    """

    def __init__(self) -> None:
        self._shares: list[Share] = []  # by boundary, ascending; [0] is the current one
        self._cursor: int | None = None  # the current share's next arrival index
        self._last = -1  # the last arrival index run

    def add(self, share: Share) -> None:
        b = share.segment.boundary
        kept = [s for s in self._shares if s.segment.boundary < b]
        current_dropped = not kept
        self._shares = [*kept, share]
        if current_dropped:
            self._cursor = share.first_from(max(b, self._last + 1))

    def _settle(self) -> None:
        """Move on to the next share once the current one has no arrival before its boundary."""
        while len(self._shares) > 1:
            after = self._shares[1]
            if self._cursor is not None and self._cursor < after.segment.boundary:
                return
            del self._shares[0]
            self._cursor = after.first_from(max(after.segment.boundary, self._last + 1))

    def next_due(self) -> float | None:
        """When this worker's next arrival is due, or None while it has none."""
        self._settle()
        if self._cursor is None:
            return None
        return self._shares[0].segment.due(self._cursor)

    def pop(self) -> tuple[int, float]:
        """The next arrival (index, due time); call after ``next_due()`` returned a time."""
        due = self.next_due()
        assert due is not None and self._cursor is not None
        k = self._cursor
        self._last = k
        self._cursor = k + self._shares[0].slots
        return k, due

    def skip_until(self, t: float) -> None:
        """Pass over the arrivals due before ``t`` (a rate cap's slots nobody used)."""
        while True:
            self._settle()
            if self._cursor is None:
                return
            share = self._shares[0]
            segment = share.segment
            if segment.due(self._cursor) >= t:
                return
            first = share.first_from(max(self._cursor, math.ceil(segment.position_at(t))))
            assert first is not None
            if len(self._shares) > 1 and first >= self._shares[1].segment.boundary:
                self._last = self._shares[1].segment.boundary - 1
                self._cursor = first
                continue  # the next share takes over: skip within it
            while segment.due(first) < t:  # float rounding
                first += share.slots
            self._last = first - share.slots
            self._cursor = first
            return

    @property
    def rate(self) -> float:
        """This worker's current rate of arrivals."""
        if not self._shares:
            return 0.0
        share = self._shares[0]
        return share.segment.rate / share.slots if share.slots else 0.0


class ClassMix:
    """The user class of arrival ``k``, in proportion to the classes' weights."""

    def __init__(self, weights: Mapping[str, int | float]) -> None:
        names = sorted(n for n, w in weights.items() if w > 0)
        if not names:
            raise ValueError("no user class with a weight above 0")
        total = float(sum(weights[n] for n in names))
        self.names = tuple(names)
        self._bounds: list[float] = []
        running = 0.0
        for n in names:
            running += weights[n] / total
            self._bounds.append(running)
        self._bounds[-1] = 1.0

    def class_of(self, k: int) -> str:
        if len(self.names) == 1:
            return self.names[0]
        u = (k * _PHI) % 1.0
        bounds = self._bounds
        for i, bound in enumerate(bounds):
            if u < bound:
                return self.names[i]
        return self.names[-1]


def shifted(share: Share, offset: float) -> Share:
    """``share`` with its start moved by ``offset`` (from the master's clock to a worker's)."""
    return replace(share, segment=replace(share.segment, start=share.segment.start + offset))
