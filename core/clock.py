"""The master's clock: real time in a run, virtual time in a test (trio's ``MockClock``).

What the master decides by elapsed time — when to send heartbeats, when a silent worker is
lost, how far a ramp has come, when to sample its CPU — reads ``clock.monotonic()`` and waits
with ``await clock.sleep(seconds)``. ``SystemClock`` is ``time.monotonic`` and
``asyncio.sleep``. ``MockClock`` stands still until a test moves it with
``await clock.advance(seconds)``, which wakes every sleeper whose deadline comes on the way, in
deadline order, each at its own deadline; so "a worker silent for 3 s is lost" is tested in
milliseconds, and exactly.

Waits that bound shutdown (how long to wait for workers to stop) stay on real time: a test
must never hang on a clock that nobody moves. Pure asyncio: no gevent, no zmq.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds, for differences only (``time.monotonic()``'s contract)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until ``monotonic()`` has moved on by ``seconds``."""
        ...


class SystemClock:
    """Real time: what the master uses outside tests."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# asyncio turns a woken sleeper gets to run before advance() goes on: enough for a loop that
# wakes, does its work (which may hand a callback or two to the loop) and sleeps again
_SETTLE_TURNS = 20


class MockClock:
    """Virtual time that moves only when ``advance()`` says so."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # sleepers with one deadline wake in the order they slept

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # a turn for the others, as asyncio.sleep(0) is
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), woken))
        await woken  # a cancelled sleeper's future is cancelled too: advance() skips it

    @property
    def sleepers(self) -> int:
        """How many tasks wait on this clock (the cancelled ones not counted)."""
        return sum(1 for _, _, woken in self._sleepers if not woken.done())

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``; each sleeper due on the way wakes at its deadline and
        runs until it waits again before time moves further."""
        if seconds < 0:
            raise ValueError("time does not go back")
        end = self._now + seconds
        await _settle()  # what is already runnable runs at the current time
        while self._sleepers and self._sleepers[0][0] <= end:
            deadline, _, woken = heapq.heappop(self._sleepers)
            if woken.done():
                continue
            self._now = max(self._now, deadline)
            woken.set_result(None)
            await _settle()
        self._now = end
        await _settle()


async def _settle() -> None:
    for _ in range(_SETTLE_TURNS):
        await asyncio.sleep(0)
