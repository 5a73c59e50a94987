"""How many users of each class every worker runs, and how fast they start. Pure: no I/O.

- ``class_totals(classes, users)``: users per class. Classes with ``fixed_count`` are served
  first, in declaration order; the rest share what is left by weight, largest remainder
  (Hamilton) first, ties to the class declared first. If every class is fixed, the total is
  capped at the sum of the fixed counts.
- ``Dispatcher(classes)`` holds ``worker id -> {class name: count}``. ``set_workers(ids)``
  rebalances for a new worker set, ``step_to(users)`` moves the total; both return the ids whose
  counts changed, so the master sends ``worker_target(id)`` to those only. After every call the
  class totals equal ``class_totals(requested)``, and between any two workers each class's count,
  and each worker's total, differ by at most one.
- ``Ramp(dispatcher, target, spawn_rate, now)`` paces ``step_to`` on the caller's clock: user
  ``j`` of the ramp is due at ``now + j / spawn_rate``. Call ``advance(now)``, then sleep until
  ``next_due()``. A new target mid-ramp is a new ``Ramp``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Dispatcher", "Ramp", "UserClassSpec", "class_totals"]


@dataclass(frozen=True)
class UserClassSpec:
    """What dispatch needs to know about a user class."""

    name: str
    weight: int = 1
    fixed_count: int = 0

    def __post_init__(self) -> None:
        for field in ("weight", "fixed_count"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{self.name}: {field} must be an int >= 0, not {value!r}")

    @classmethod
    def of(cls, user_class: type) -> UserClassSpec:
        """The spec of a User class, from its ``weight`` and ``fixed_count`` attributes."""
        return cls(
            user_class.__name__,
            getattr(user_class, "weight", 1),
            getattr(user_class, "fixed_count", 0),
        )


class _Split:
    """A checked class list and the per-class totals (as a list, by class index) for any count."""

    __slots__ = ("names", "_fixed", "_weighted", "_weight_sum")

    def __init__(self, classes: Sequence[UserClassSpec]) -> None:
        self.names = tuple(spec.name for spec in classes)
        if not self.names:
            raise ValueError("no user classes")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"user class names must be unique: {self.names}")
        self._fixed = [(i, s.fixed_count) for i, s in enumerate(classes) if s.fixed_count > 0]
        self._weighted = [
            (i, s.weight) for i, s in enumerate(classes) if s.fixed_count == 0 and s.weight > 0
        ]
        self._weight_sum = sum(weight for _, weight in self._weighted)
        if not self._fixed and not self._weighted:
            raise ValueError("every user class has weight 0 and no fixed_count")

    def totals(self, users: int) -> list[int]:
        if users < 0:
            raise ValueError(f"user count must be >= 0, not {users}")
        out = [0] * len(self.names)
        left = users
        for i, fixed in self._fixed:
            out[i] = min(fixed, left)
            left -= out[i]
        if left and self._weight_sum:
            remainders = []
            given = 0
            for i, weight in self._weighted:
                # Integer arithmetic: the quota left * weight / weight_sum is exact.
                out[i], remainder = divmod(left * weight, self._weight_sum)
                given += out[i]
                remainders.append((-remainder, i))
            remainders.sort()
            for _, i in remainders[: left - given]:
                out[i] += 1
        return out


def class_totals(classes: Sequence[UserClassSpec], users: int) -> dict[str, int]:
    """Users per class name for ``users`` users in all (see the module docstring)."""
    split = _Split(classes)
    return dict(zip(split.names, split.totals(users), strict=True))


Bucket = dict[str, None]  # an insertion-ordered set of worker ids


class Dispatcher:
    """Holds the current assignment: worker id -> {class name: count}.

    Ties between equally good workers go to the one that has been in that state longest (right
    after ``set_workers``: join order), which spreads changes evenly and keeps results
    deterministic for a given sequence of calls.
    """

    def __init__(self, classes: Sequence[UserClassSpec]) -> None:
        self._split = _Split(classes)
        self._names = self._split.names
        self._k = len(self._names)
        self._counts: dict[str, list[int]] = {}  # in join order
        self._totals: dict[str, int] = {}
        self._class_counts = [0] * self._k
        self._requested = 0
        # Workers filed by (count of class c, total) per class, and by total: the best worker
        # to add to or remove from is in the smallest or largest key, a handful of keys at most.
        self._by_class: list[dict[tuple[int, int], Bucket]] = [{} for _ in self._names]
        self._by_total: dict[int, Bucket] = {}
        self._before: dict[str, tuple[int, ...]] = {}  # counts at the start of the current call

    # -- views ---------------------------------------------------------------------------------

    @property
    def assignment(self) -> Mapping[str, Mapping[str, int]]:
        """A copy of worker id -> {class name: count}, in join order."""
        names = self._names
        return {w: dict(zip(names, counts, strict=True)) for w, counts in self._counts.items()}

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(self._counts)

    @property
    def requested(self) -> int:
        """The user count last passed to ``step_to``."""
        return self._requested

    @property
    def user_count(self) -> int:
        """Users assigned now: ``requested``, less any fixed-count cap, or 0 with no workers."""
        return sum(self._class_counts)

    @property
    def class_counts(self) -> dict[str, int]:
        return dict(zip(self._names, self._class_counts, strict=True))

    def worker_target(self, worker_id: str) -> dict[str, int]:
        """Class name -> count for one worker, zeros included (so it knows what to stop)."""
        return dict(zip(self._names, self._counts[worker_id], strict=True))

    # -- changes -------------------------------------------------------------------------------

    def set_workers(self, worker_ids: Iterable[str]) -> set[str]:
        """Make ``worker_ids`` the worker set and rebalance; returns the ids whose counts changed.

        Departed workers are not in the result. Users stay where they are when balance allows.
        """
        wanted = list(dict.fromkeys(worker_ids))
        keep = set(wanted)
        for worker in [w for w in self._counts if w not in keep]:
            for c, n in enumerate(self._counts.pop(worker)):
                self._class_counts[c] -= n
            del self._totals[worker]
        for worker in wanted:
            if worker not in self._counts:
                self._counts[worker] = [0] * self._k
                self._totals[worker] = 0
        if self._counts:
            self._rebalance(self._split.totals(self._requested))
        self._file_all()
        return self._finish()

    def step_to(self, users: int) -> set[str]:
        """Move the total to ``users``; returns the ids whose counts changed.

        Each added user of a class goes to the worker with the fewest of it, ties to the one
        with the fewest users; removal mirrors that. When that would leave two workers' totals
        two apart, one user moves to restore balance. Whole rounds (one more or one fewer of a
        class on every worker) are applied at once: a call costs O(classes * workers) for
        those, plus O(classes) per user left over.
        """
        target = self._split.totals(users)
        self._requested = users
        n = len(self._counts)
        if not n:
            return set()
        deltas = [t - now for t, now in zip(target, self._class_counts, strict=True)]
        # Removals first: with the Alabama paradox one step up can take a user from a class.
        for c, d in enumerate(deltas):
            if d < 0:
                rounds, rest = divmod(-d, n)
                if rounds:
                    self._shift_all(c, -rounds)
                for _ in range(rest):
                    self._remove_one(c)
        for c, d in enumerate(deltas):
            if d > 0:
                rounds, rest = divmod(d, n)
                if rounds:
                    self._shift_all(c, rounds)
                for _ in range(rest):
                    self._add_one(c)
        return self._finish()

    # -- internals -----------------------------------------------------------------------------

    def _file_all(self) -> None:
        self._by_class = [{} for _ in self._names]
        self._by_total = {}
        for worker, counts in self._counts.items():
            total = self._totals[worker]
            for c, n in enumerate(counts):
                self._by_class[c].setdefault((n, total), {})[worker] = None
            self._by_total.setdefault(total, {})[worker] = None

    def _apply(self, worker: str, c: int, delta: int) -> None:
        counts = self._counts[worker]
        if worker not in self._before:
            self._before[worker] = tuple(counts)
        total = self._totals[worker]
        new_total = total + delta
        for d, n in enumerate(counts):
            buckets = self._by_class[d]
            key = (n, total)
            bucket = buckets[key]
            del bucket[worker]
            if not bucket:
                del buckets[key]
            key = (n + delta, new_total) if d == c else (n, new_total)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = {worker: None}
            else:
                bucket[worker] = None
        bucket = self._by_total[total]
        del bucket[worker]
        if not bucket:
            del self._by_total[total]
        self._by_total.setdefault(new_total, {})[worker] = None
        counts[c] += delta
        self._totals[worker] = new_total
        self._class_counts[c] += delta

    def _shift_all(self, c: int, delta: int) -> None:
        for worker, counts in self._counts.items():
            if worker not in self._before:
                self._before[worker] = tuple(counts)
            counts[c] += delta
            self._totals[worker] += delta
        self._class_counts[c] += delta * len(self._counts)
        # Everyone moved alike: re-key the buckets, keeping each bucket (and its order) intact.
        for d, buckets in enumerate(self._by_class):
            shift = delta if d == c else 0
            self._by_class[d] = {(n + shift, t + delta): b for (n, t), b in buckets.items()}
        self._by_total = {t + delta: b for t, b in self._by_total.items()}

    def _add_one(self, c: int) -> None:
        buckets = self._by_class[c]
        worker = next(iter(buckets[min(buckets)]))
        self._apply(worker, c, 1)
        lowest = next(iter(self._by_total[min(self._by_total)]))
        if self._totals[worker] - self._totals[lowest] > 1:
            self._move(worker, lowest)

    def _remove_one(self, c: int) -> None:
        buckets = self._by_class[c]
        worker = next(iter(buckets[max(buckets)]))
        self._apply(worker, c, -1)
        highest = next(iter(self._by_total[max(self._by_total)]))
        if self._totals[highest] - self._totals[worker] > 1:
            self._move(highest, worker)

    def _move(self, src: str, dst: str) -> None:
        """Move one user from ``src`` to ``dst`` of a class where ``src`` has one more.

        Prefers a class whose move undoes part of this call's changes (no extra churn).
        """
        a, b = self._counts[src], self._counts[dst]
        a0, b0 = self._before.get(src, a), self._before.get(dst, b)
        pick = -1
        for c in range(self._k):
            if a[c] > b[c]:
                if a[c] > a0[c] or b[c] < b0[c]:
                    pick = c
                    break
                if pick < 0:
                    pick = c
        self._apply(src, pick, -1)
        self._apply(dst, pick, 1)

    def _rebalance(self, target: list[int]) -> None:
        """Set counts for ``target`` from scratch, keeping users in place where balance allows.

        Each class gets ``q`` or ``q + 1`` per worker; the ``+1`` extras go first to workers that
        already run more than ``q`` (no churn), then to those with the fewest extras so far.
        Extras are then swapped from the richest to the poorest worker until totals are within
        one, preferring swaps that cost nothing.
        """
        workers = list(self._counts)
        position = {w: i for i, w in enumerate(workers)}
        n = len(workers)
        counts = self._counts
        base = [t // n for t in target]
        extra: dict[str, list[int]] = {w: [0] * self._k for w in workers}
        extras = dict.fromkeys(workers, 0)
        for c, total in enumerate(target):
            rest = total % n
            if not rest:
                continue
            chosen = heapq.nsmallest(
                rest,
                workers,
                key=lambda w, c=c: (counts[w][c] <= base[c], extras[w], position[w]),
            )
            for w in chosen:
                extra[w][c] = 1
                extras[w] += 1

        # Level the extras; a worker's total is sum(base) + its extras.
        levels: list[list[str]] = [[] for _ in range(self._k + 1)]
        for w in reversed(workers):  # lists pop from the end: earliest joined first
            levels[extras[w]].append(w)
        top = max(extras.values())
        bottom = min(extras.values())
        while top - bottom > 1:
            src, dst = levels[top].pop(), levels[bottom].pop()
            xs, xd = extra[src], extra[dst]
            pick = -1
            for c in range(self._k):
                if xs[c] and not xd[c]:
                    if counts[dst][c] > base[c] or counts[src][c] <= base[c]:
                        pick = c
                        break
                    if pick < 0:
                        pick = c
            xs[pick], xd[pick] = 0, 1
            levels[top - 1].append(src)
            levels[bottom + 1].append(dst)
            while not levels[top]:
                top -= 1
            while not levels[bottom]:
                bottom += 1

        for w in workers:
            want = [b + x for b, x in zip(base, extra[w], strict=True)]
            if want != counts[w]:
                self._before.setdefault(w, tuple(counts[w]))
                counts[w] = want
                self._totals[w] = sum(want)
        self._class_counts = list(target)

    def _finish(self) -> set[str]:
        counts = self._counts
        changed = {w for w, old in self._before.items() if w in counts and tuple(counts[w]) != old}
        self._before = {}
        return changed


class Ramp:
    """Paces the dispatcher toward ``target`` at ``spawn_rate`` users/s, on the caller's clock.

    Counts from ``dispatcher.requested`` at ``now``; user ``j`` (1-based) of the ramp is due at
    ``now + j / spawn_rate``, whichever way the ramp goes. ``spawn_rate`` may be ``math.inf``.
    """

    def __init__(self, dispatcher: Dispatcher, target: int, spawn_rate: float, now: float) -> None:
        if target < 0:
            raise ValueError(f"target must be >= 0, not {target}")
        if not spawn_rate > 0:
            raise ValueError(f"spawn rate must be > 0, not {spawn_rate}")
        self._dispatcher = dispatcher
        self._target = target
        self._rate = spawn_rate
        self._t0 = now
        self._start = dispatcher.requested
        self._sign = 1 if target >= self._start else -1
        self._steps = abs(target - self._start)
        self._done = 0  # users of this ramp started (or stopped) so far

    @property
    def target(self) -> int:
        return self._target

    @property
    def spawn_rate(self) -> float:
        return self._rate

    @property
    def done(self) -> bool:
        return self._done == self._steps

    def _due_at(self, j: int) -> float:
        return self._t0 + j / self._rate

    def advance(self, now: float) -> set[str]:
        """Step the dispatcher to the users due by ``now``; returns the changed worker ids."""
        if math.isinf(self._rate):
            due = self._steps
        else:
            due = min(max(math.floor(self._rate * (now - self._t0)), 0), self._steps)
            # Settle float rounding against the same expression next_due() uses, so sleeping
            # until next_due() always makes progress.
            while due < self._steps and now >= self._due_at(due + 1):
                due += 1
            while due > 0 and now < self._due_at(due):
                due -= 1
        if due <= self._done:
            return set()
        self._done = due
        return self._dispatcher.step_to(self._start + self._sign * due)

    def next_due(self) -> float | None:
        """When the next user is due, or None when the ramp is done."""
        if self.done:
            return None
        return self._due_at(self._done + 1)
