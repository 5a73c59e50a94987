"""Users that ended themselves are spent: their slots are never filled again. Pure: no I/O.

A user that raises ``StopUser`` (or ends its ``run``) is gone for good, as in Locust's
``-u 5`` with users that make three requests each: 15 requests, not more. The dispatcher
still counts its slot — that is what keeps ramps, rebalancing and shapes from starting a
replacement — and this ledger says which slots on each worker are spent:

- ``ended(worker, counts)``: the worker's running total of users that ended, per class; each
  new ending charges one slot of that class to that worker.
- ``settle(before, after)``: after the dispatcher moved slots (a worker joined or left, a
  step, a new class mix), a worker charged with more spent slots of a class than it now holds
  passes the excess to the workers that gained slots of that class, so the users they would
  start there are not started. Excess with nowhere to go (a ramp-down removed those slots) is
  dropped: the ramp-down "stopped" users that had ended already.

A worker runs ``slots - charge - (its endings the charge does not count yet)`` users of each
class; ``ended_seen`` tells it how many of its endings the charge counts.
"""

from __future__ import annotations

from collections.abc import Mapping

Assignment = Mapping[str, Mapping[str, int]]  # worker id -> {class name: slots}


class SpentSlots:
    def __init__(self) -> None:
        self._charge: dict[str, dict[str, int]] = {}
        self._seen: dict[str, dict[str, int]] = {}

    def __bool__(self) -> bool:
        return any(any(c.values()) for c in self._charge.values())

    def reset(self) -> None:
        self._charge.clear()
        self._seen.clear()

    def charge(self, worker: str) -> dict[str, int]:
        return {c: n for c, n in self._charge.get(worker, {}).items() if n}

    def seen(self, worker: str) -> dict[str, int]:
        return dict(self._seen.get(worker, {}))

    def total(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for classes in self._charge.values():
            for name, n in classes.items():
                out[name] = out.get(name, 0) + n
        return out

    def ended(self, worker: str, counts: Mapping[str, int]) -> bool:
        """Record ``worker``'s running totals of ended users; True if anything was new."""
        seen = self._seen.setdefault(worker, {})
        charge = self._charge.setdefault(worker, {})
        new = False
        for name, total in counts.items():
            fresh = int(total) - seen.get(name, 0)
            if fresh > 0:
                seen[name] = int(total)
                charge[name] = charge.get(name, 0) + fresh
                new = True
        return new

    def forget(self, worker: str) -> None:
        self._seen.pop(worker, None)

    def settle(self, before: Assignment, after: Assignment) -> set[str]:
        """Move charges that no longer fit their worker's slots to the slots just gained;
        returns the workers whose charge changed."""
        if not self:
            return set()
        changed: set[str] = set()
        excess: dict[str, int] = {}
        for worker in list(self._charge):
            charge = self._charge[worker]
            slots = after.get(worker)
            for name, n in charge.items():
                have = 0 if slots is None else slots.get(name, 0)
                if n > have:
                    excess[name] = excess.get(name, 0) + n - have
                    charge[name] = have
                    changed.add(worker)
            if slots is None:
                del self._charge[worker]
        for name, left in excess.items():
            for worker in sorted(after):
                if not left:
                    break
                gained = after[worker].get(name, 0) - before.get(worker, {}).get(name, 0)
                if gained <= 0:
                    continue
                charge = self._charge.setdefault(worker, {})
                room = after[worker].get(name, 0) - charge.get(name, 0)
                take = min(gained, left, room)
                if take > 0:
                    charge[name] = charge.get(name, 0) + take
                    left -= take
                    changed.add(worker)
        return {w for w in changed if w in after}


def snapshot(assignment: Assignment) -> dict[str, dict[str, int]]:
    return {worker: dict(classes) for worker, classes in assignment.items()}
