"""How many users of each class every worker runs, and how fast they start. Pure: no I/O.

- ``class_totals(classes, users)``: users per class, as Locust deals them when it ramps from
  zero to ``users``: classes with ``fixed_count`` first (among themselves in Locust's KL
  order), then the weighted classes in Locust's KL order over the classes sorted by name (so
  3 users of weights 3:1:1 are one of each). Weight-0 classes get none. If no class takes a
  share (all fixed, or the rest weight 0), the total is capped at the fixed counts.
- ``Dispatcher(classes)`` holds ``worker id -> {class name: count}``. ``set_workers(ids)``
  rebalances for a new worker set, ``step_to(users)`` moves the total; both return the ids whose
  counts changed, so the master sends ``worker_target(id)`` to those only. After every call the
  class totals equal ``class_totals(requested)``, and between any two workers each class's count,
  and each worker's total, differ by at most one.
- ``Ramp(dispatcher, target, spawn_rate, now)`` paces ``step_to`` on the caller's clock: user
  ``j`` (1-based) of the ramp is due at ``now + (j - 1) / spawn_rate``. Call ``advance(now)``, send the changed
  workers their targets with ``spread(now)``, then sleep ``pause(now)`` (both runtimes that
  ramp, the master and library mode, pace it so). A new target mid-ramp is a new ``Ramp``. On the way no class moves against
  the ramp (``step_to(n, monotone=True)``), so no user is stopped only to be restarted; the
  last step lands exactly on ``class_totals(target)``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Dispatcher", "Ramp", "UserClassSpec", "class_totals"]

# How many tied candidates _pick scores; more hardly helps (measured up to 100 workers).
_LOOKAHEAD_CANDIDATES = 8
# A ramp's step: its users start over at most this long (until the next step is due), and the
# ramping loop wakes at least this often.
RAMP_STEP_MAX = 0.1
# ... and at most this often: at high rates, users due in between start at the next advance.
RAMP_PAUSE_MIN = 0.01
# step_to plans a step as a whole when it changes more users than this plus workers / 8:
# planning costs about as much as placing that many users one by one.
_BATCH_ABOVE = 8
# How many of the richest and of the poorest workers _rebalance searches for a free pass.
_PASS_SEARCH = 32


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


class _KlSequence:
    """Locust's order of users over classes, extended on demand: each next user goes to the
    class whose share it brings closest to its weight (Kullback-Leibler greedy, classes by
    name, ties to the class with fewer users, then the lighter, then the name — the same keys
    and float expressions as Locust's ``_kl_generator``, so the sequences are identical).

    ``counts(n)`` is how many of the first ``n`` went to each class: checkpoints every
    ``_STRIDE`` users plus a short tail, so a query costs O(classes + stride).
    """

    _STRIDE = 32

    __slots__ = ("_heap", "_order", "_marks", "_width")

    def __init__(self, weights: Sequence[tuple[int, str, int]], width: int) -> None:
        # (class index, name, weight) for the classes that take part, of ``width`` in all
        self._width = width
        self._heap = [
            (w * math.log2(w / (w + 1.0)), w + 1.0, w, name, i) for i, name, w in weights if w > 0
        ]
        heapq.heapify(self._heap)
        # one byte per user while the class indices fit in one
        self._order: bytearray | list[int] = bytearray() if self._width <= 256 else []
        self._marks: list[list[int]] = [[0] * self._width]

    def _extend(self, n: int) -> None:
        heap, order, stride = self._heap, self._order, self._STRIDE
        running = list(self._marks[-1])
        for j in range(len(self._marks) * stride - stride, len(order)):
            running[order[j]] += 1
        while len(order) < n:
            _, x, weight, name, i = heap[0]
            heapq.heapreplace(heap, (weight * math.log2(x / (x + 1.0)), x + 1.0, weight, name, i))
            order.append(i)
            running[i] += 1
            if len(order) % stride == 0:
                self._marks.append(list(running))

    def counts(self, n: int) -> list[int]:
        out = [0] * self._width
        if n <= 0 or not self._heap:
            return out
        if len(self._order) < n:
            self._extend(n)
        mark = n // self._STRIDE
        out = list(self._marks[mark])
        for j in range(mark * self._STRIDE, n):
            out[self._order[j]] += 1
        return out


class _Split:
    """A checked class list and the per-class totals (as a list, by class index) for any count.

    As Locust: ``fixed_count`` classes first, dealt among themselves by the same KL order with
    their fixed counts as weights; then the weighted classes in KL order. Totals grow with the
    count (a class never loses a user when the total grows), and match what Locust runs when
    it ramps from zero to that many users.
    """

    __slots__ = ("names", "_fixed", "_fixed_total", "_fixed_seq", "_weighted_seq")

    def __init__(self, classes: Sequence[UserClassSpec]) -> None:
        self.names = tuple(spec.name for spec in classes)
        if not self.names:
            raise ValueError("no user classes")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"user class names must be unique: {self.names}")
        by_name = sorted(range(len(classes)), key=lambda i: classes[i].name)
        fixed = [(i, classes[i].name, classes[i].fixed_count) for i in by_name if classes[i].fixed_count > 0]
        weighted = [
            (i, classes[i].name, classes[i].weight)
            for i in by_name
            if classes[i].fixed_count == 0 and classes[i].weight > 0
        ]
        if not fixed and not weighted:
            raise ValueError("every user class has weight 0 and no fixed_count")
        width = len(classes)
        self._fixed = [(i, n) for i, _, n in fixed]
        self._fixed_total = sum(n for _, n in self._fixed)
        self._fixed_seq = _KlSequence(fixed, width)
        self._weighted_seq = _KlSequence(weighted, width) if weighted else None

    def totals(self, users: int) -> list[int]:
        if users < 0:
            raise ValueError(f"user count must be >= 0, not {users}")
        if users >= self._fixed_total:
            out = [0] * len(self.names)
            for i, n in self._fixed:
                out[i] = n
        else:
            out = self._fixed_seq.counts(users)
        left = users - self._fixed_total
        if left > 0 and self._weighted_seq is not None:
            for i, n in enumerate(self._weighted_seq.counts(left)):
                out[i] += n
        return out


def class_totals(classes: Sequence[UserClassSpec], users: int) -> dict[str, int]:
    """Users per class name for ``users`` users in all (see the module docstring)."""
    split = _Split(classes)
    return dict(zip(split.names, split.totals(users), strict=True))


Bucket = dict[str, None]  # an insertion-ordered set of worker ids


def _without_reversals(target: list[int], current: list[int]) -> list[int]:
    """``target`` adjusted so that no class moves against the overall direction (same sum).

    Going up, a class largest remainder would shrink keeps its users and the classes that
    grow most give up the difference; going down, the mirror image.
    """
    up = sum(target) >= sum(current)
    clamped = [max(t, c) if up else min(t, c) for t, c in zip(target, current, strict=True)]
    surplus = sum(clamped) - sum(target)
    while surplus:
        if up:
            c = max(range(len(clamped)), key=lambda i: (clamped[i] - current[i], -i))
            clamped[c] -= 1
            surplus -= 1
        else:
            c = max(range(len(clamped)), key=lambda i: (current[i] - clamped[i], -i))
            clamped[c] += 1
            surplus += 1
    return clamped


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
        self._horizon: tuple[int, list[int]] = (-1, [])  # see _pick

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

    def totals_for(self, users: int) -> dict[str, int]:
        """Class name -> users of that class when ``users`` run in all."""
        return dict(zip(self._names, self._split.totals(users), strict=True))

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

    def step_to(self, users: int, monotone: bool = False) -> set[str]:
        """Move the total to ``users``; returns the ids whose counts changed.

        A few users at a time: each added user of a class goes to a worker with the fewest of
        it, then with the fewest users (a look-ahead breaks the remaining ties so the next
        users fit too); removal mirrors that. Should that still leave two workers' totals two
        apart, one user moves. Larger steps are planned as a whole, like ``set_workers``, and
        move no more users than the step needs. Cost: O(classes) per user, at most
        O(classes * workers * log workers) per call.
        """
        target = self._split.totals(users)
        if monotone:
            target = _without_reversals(target, self._class_counts)
        self._requested = users
        n = len(self._counts)
        if not n:
            return set()
        deltas = [t - now for t, now in zip(target, self._class_counts, strict=True)]
        if sum(map(abs, deltas)) > _BATCH_ABOVE + n // 8:
            self._rebalance(target)
            self._file_all()
            return self._finish()
        # Removals first: with the Alabama paradox one step up can take a user from a class.
        for c, d in enumerate(deltas):
            for _ in range(-d):
                self._remove_one(c)
        for c, d in enumerate(deltas):
            for _ in range(d):
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
            filed = buckets.get(key)
            if filed is None:
                buckets[key] = {worker: None}
            else:
                filed[worker] = None
        bucket = self._by_total[total]
        del bucket[worker]
        if not bucket:
            del self._by_total[total]
        self._by_total.setdefault(new_total, {})[worker] = None
        counts[c] += delta
        self._totals[worker] = new_total
        self._class_counts[c] += delta

    def _add_one(self, c: int) -> None:
        worker = self._pick(c, up=True)
        self._apply(worker, c, 1)
        lowest = next(iter(self._by_total[min(self._by_total)]))
        if self._totals[worker] - self._totals[lowest] > 1:
            self._move(worker, lowest)

    def _remove_one(self, c: int) -> None:
        worker = self._pick(c, up=False)
        self._apply(worker, c, -1)
        highest = next(iter(self._by_total[max(self._by_total)]))
        if self._totals[highest] - self._totals[worker] > 1:
            self._move(highest, worker)

    def _pick(self, c: int, up: bool) -> str:
        """The worker to add a user of class ``c`` to (or, ``up=False``, remove one from).

        Candidates have the fewest of ``c`` and then the fewest users (mirrored for removal).
        Say ``R`` more workers share that lowest total: the next ``R`` users must go one to each
        of them, or a user has to move. So among the first few candidates, take the one least
        needed by the classes due in those ``R`` steps, each class weighted by how few of
        those workers could still take it.
        """
        buckets = self._by_class[c]
        level = min(buckets) if up else max(buckets)
        candidates = buckets[level]
        first = next(iter(candidates))
        edge = min(self._by_total) if up else max(self._by_total)
        rest = len(self._by_total[edge]) - 1
        if len(candidates) == 1 or level[1] != edge or rest <= 0 or self._k == 1:
            return first
        now = self._class_counts
        # The end of the round; the same for every pick in it, so its totals are cached.
        horizon = sum(now) + 1 + rest if up else max(0, sum(now) - 1 - rest)
        if horizon != self._horizon[0]:
            self._horizon = (horizon, self._split.totals(horizon))
        sign = 1 if up else -1
        due = [sign * (t - h) for t, h in zip(self._horizon[1], now, strict=True)]
        weights = []
        for d, need in enumerate(due):
            if need > 0 and d != c:
                by_d = self._by_class[d]
                at = min(by_d)[0] if up else max(by_d)[0]
                able = len(by_d.get((at, edge), ()))
                if able:
                    weights.append((d, at, need / able))
        if not weights:
            return first

        def demand(worker: str) -> float:
            counts = self._counts[worker]
            return sum(weight for d, at, weight in weights if counts[d] == at)

        return min(itertools.islice(candidates, _LOOKAHEAD_CANDIDATES), key=demand)

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
        """Set counts for ``target`` from scratch, moving as few users as balance allows.

        Each class gets ``q`` or ``q + 1`` per worker. First the ``+1`` extras that keep a user
        in place go to workers running more than ``q`` of the class, up to a balanced share
        each (classes with the least choice first; then fewest extras so far, then least wanted
        by other classes). The other
        extras each start a user anywhere, so they go where the fewest extras are. Last, extras
        are passed from the richest to the poorest worker until totals are within one,
        passing one that costs nothing whenever there is one.
        """
        workers = list(self._counts)
        position = {w: i for i, w in enumerate(workers)}
        n = len(workers)
        counts = self._counts
        base = [t // n for t in target]
        rest = [t % n for t in target]
        extra: dict[str, list[int]] = {w: [0] * self._k for w in workers}
        extras = dict.fromkeys(workers, 0)
        keen = [[w for w in workers if counts[w][c] > base[c]] for c in range(self._k)]

        def give(c: int, chosen: Iterable[str]) -> None:
            for w in chosen:
                extra[w][c] = 1
                extras[w] += 1
                rest[c] -= 1

        pending = sorted(
            (c for c in range(self._k) if rest[c]), key=lambda c: len(keen[c]) - rest[c]
        )
        wanted = dict.fromkeys(workers, 0)  # how many pending classes each worker is keen on
        for c in pending:
            for w in keen[c]:
                wanted[w] += 1
        cap = sum(rest) // n + 1  # balanced, no worker ends with more extras than this
        for c in pending:
            for w in keen[c]:
                wanted[w] -= 1
            room = [w for w in keen[c] if extras[w] < cap]
            give(
                c,
                heapq.nsmallest(rest[c], room, key=lambda w: (extras[w], wanted[w], position[w])),
            )
        for c in sorted(pending, key=lambda c: -rest[c]):
            free = [w for w in workers if not extra[w][c]]
            give(c, heapq.nsmallest(rest[c], free, key=lambda w: (extras[w], position[w])))

        # Level the extras: a worker's total is sum(base) + its extras.
        levels: list[dict[str, None]] = [{} for _ in range(self._k + 1)]
        for w in workers:
            levels[extras[w]][w] = None
        top, bottom = max(extras.values()), min(extras.values())
        while top - bottom > 1:
            src, dst, pick = self._cheapest_pass(levels[top], levels[bottom], extra, base)
            extra[src][pick], extra[dst][pick] = 0, 1
            del levels[top][src], levels[bottom][dst]
            levels[top - 1][src] = None
            levels[bottom + 1][dst] = None
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

    def _cheapest_pass(
        self,
        rich: Iterable[str],
        poor: Iterable[str],
        extra: dict[str, list[int]],
        base: list[int],
    ) -> tuple[str, str, int]:
        """An extra to pass from a rich worker to a poor one: a free pass if there is any.

        Passing class ``c`` costs nothing when the poor worker already runs more than ``q`` of
        it, or the rich one does not (its extra would have started a user anyway).
        """
        counts = self._counts
        fallback = None
        # Bounded search: when no pass is free, scanning every pair would cost workers squared.
        for src in itertools.islice(rich, _PASS_SEARCH):
            xs = extra[src]
            for dst in itertools.islice(poor, _PASS_SEARCH):
                xd = extra[dst]
                for c in range(self._k):
                    if xs[c] and not xd[c]:
                        if counts[dst][c] > base[c] or counts[src][c] <= base[c]:
                            return src, dst, c
                        if fallback is None:
                            fallback = (src, dst, c)
        assert fallback is not None  # src has more extras than dst, so some class differs
        return fallback

    def _finish(self) -> set[str]:
        counts = self._counts
        changed = {w for w, old in self._before.items() if w in counts and tuple(counts[w]) != old}
        self._before = {}
        return changed


class Ramp:
    """Paces the dispatcher toward ``target`` at ``spawn_rate`` users/s, on the caller's clock.

    Counts from ``dispatcher.requested`` at ``now``; user ``j`` (1-based) of the ramp is due at
    ``now + (j - 1) / spawn_rate``, whichever way the ramp goes: the first at once, as Locust
    starts its first batch at once (``-u 1 -r 1 -t 1`` runs a user), then one every
    1/spawn_rate s, where Locust starts floor(spawn_rate) users every second in a burst.
    ``spawn_rate`` may be ``math.inf``.
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
        return self._t0 + (j - 1) / self._rate

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
        # On the way, no class moves against the ramp (largest remainder would now and then
        # stop a user only to start it again a step later: on_stop, then on_start); the last
        # step lands exactly on the target's totals.
        return self._dispatcher.step_to(self._start + self._sign * due, monotone=due < self._steps)

    def next_due(self) -> float | None:
        """When the next user is due, or None when the ramp is done."""
        if self.done:
            return None
        return self._due_at(self._done + 1)

    def spread(self, now: float) -> float:
        """Over how many seconds a worker starts the users of the step just taken: until the
        next one is due, at most ``RAMP_STEP_MAX``; 0 once the ramp is done."""
        due = self.next_due()
        return 0.0 if due is None else max(0.0, min(RAMP_STEP_MAX, due - now))

    def pause(self, now: float) -> float:
        """How long the ramping loop sleeps before its next ``advance``."""
        due = self.next_due()
        return RAMP_STEP_MAX if due is None else min(max(due - now, RAMP_PAUSE_MIN), RAMP_STEP_MAX)
