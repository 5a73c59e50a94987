"""What a lost worker may have done that no report carried: a bound, not a count.

A worker reports a delta every stats interval. One that is lost (killed, frozen, cut off)
and never comes back took with it whatever it recorded after its last delta, and the
requests it had on the wire when it died, which the target may well have served. The master
cannot know that number; it can bound it. From its last report until the master declared it
lost, the worker ran at most as fast as its last report says:

    unreported <= last known rate x (lost at - last report merged)

where the last known rate is that report's requests over the seconds it covered. A worker
lost before its first report has no rate: its share is unknown, and said so.

A lost worker that comes back (a frozen one after SIGCONT, a cut link restored) delivers its
late delta, which the master merges once, so it is no longer counted here. Pure: no clock, no
I/O; the master passes the times in (the master's clock's ``monotonic()`` values).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["LostWorker", "Unreported", "bound", "rate_of", "summary_line", "total"]

MIN_REPORT_SECONDS = 0.05
"""A delta shorter than this (a final one right after another) says little about a rate."""


class LostWorker(Protocol):
    id: str
    host: str
    last_rate: float | None
    last_report_at: float | None
    lost_at: float | None


@dataclass(frozen=True)
class Unreported:
    """One lost worker's share: at most ``requests`` (None: no report ever came, unknown)."""

    worker: str
    host: str
    rate: float | None
    silent: float

    @property
    def requests(self) -> int | None:
        if self.rate is None:
            return None
        return math.ceil(self.rate * self.silent)


def rate_of(requests: int, start: float, end: float) -> float | None:
    """Requests per second of one delta, or None when it is too short to tell."""
    seconds = end - start
    if seconds < MIN_REPORT_SECONDS:
        return None
    return max(requests, 0) / seconds


def bound(lost: Iterable[LostWorker], since: float = -math.inf) -> list[Unreported]:
    """The share of each worker still lost, counting only what happened after ``since`` (the
    last stats reset: what came before it is not in the figures anyway)."""
    out = []
    for node in lost:
        if node.lost_at is None or node.lost_at <= since:
            continue
        start = max(node.last_report_at if node.last_report_at is not None else since, since)
        if start == -math.inf:
            start = node.lost_at
        silent = max(0.0, node.lost_at - start)
        out.append(Unreported(node.id, node.host, node.last_rate, silent))
    return out


def total(shares: Iterable[Unreported]) -> tuple[int, int]:
    """(the bound over the workers with a rate, how many had none)."""
    known, unknown = 0, 0
    for share in shares:
        if share.requests is None:
            unknown += 1
        else:
            known += share.requests
    return known, unknown


def summary_line(shares: list[Unreported], lost: int) -> str:
    """The console summary's line about lost workers (``lost``: how many were lost)."""
    known, unknown = total(shares)
    line = (
        f"{lost} worker(s) lost during the test: up to {known} requests the target may have "
        "served are in no report, so missing from these figures"
    )
    details = [
        f"{s.worker} ({s.host}) {s.rate:.1f} req/s x {s.silent:.1f} s silent"
        for s in shares
        if s.rate is not None and s.requests
    ]
    if details:
        line += " (" + "; ".join(details) + ")"
    if unknown:
        line += f"; {unknown} lost before its first report, what it did is unknown"
    return line
