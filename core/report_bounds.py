"""What a worker can have done, to refuse reports that claim more (a peer on the master's port
without CURVE keys may say anything): users beyond what the master asked it to run, requests
beyond a generous rate over the time it has been connected, intervals far from the master's
clock. Pure: no asyncio, no gevent."""

from __future__ import annotations

from collections.abc import Mapping

# far above what one worker process sends (lcore's fastest path is ~10^5 requests/s per core)
MAX_REQUESTS_PER_SECOND = 1_000_000
# a report may arrive before the first second has passed, or several at once after a stall
REQUEST_ALLOWANCE_SECONDS = 5.0
# worker clocks are not the master's: a skew of minutes is a misconfigured box, not an attack
CLOCK_WINDOW_SECONDS = 3600.0


def users_beyond(reported: Mapping[str, int], asked: Mapping[str, int]) -> str | None:
    """Why ``reported`` users (per class) exceed the most the master ever ``asked`` this worker
    to run, plus a small slack for a Spawn and a report crossing; None if they do not."""
    for name, count in reported.items():
        most = asked.get(name, 0)
        if count < 0 or count > most + max(1, most // 10):
            return f"{count} users of {name[:60]!r} where the master asked for at most {most}"
    return None


def requests_beyond(total: int, connected_for: float) -> str | None:
    """Why ``total`` requests reported since the worker joined exceed what it could have sent in
    ``connected_for`` seconds; None if they do not."""
    budget = MAX_REQUESTS_PER_SECOND * (max(0.0, connected_for) + REQUEST_ALLOWANCE_SECONDS)
    if total > budget:
        return f"{total} requests in {connected_for:.1f} s connected (at most {budget:.0f})"
    return None


def time_beyond(end: float, now: float) -> str | None:
    """Why a delta that ended at ``end`` lies outside the master's clock window; None if not.
    (Only the end: an interval starts when the previous one ended, hours ago after a pause.)"""
    if abs(end - now) > CLOCK_WINDOW_SECONDS:
        return f"an interval ending at {end:.0f}, far from the master's clock ({now:.0f})"
    return None
