"""The master's asyncio event loop, run on top of gevent's hub (the master's greenlet bridge).

The master is asyncio; a locustfile's code on the master is gevent (Locust patches
everything, and recipes start greenlets from ``events.init`` or block in message handlers).
Both share one thread:

- the loop waits for I/O through the hub (``HubSelector``: its epoll descriptor is itself
  watched by the hub), so greenlets run whenever the master's loop is idle, and the loop wakes
  the moment one of its sockets or timers is due, whatever the greenlets are doing in between;
- when the loop stays busy, it still gives the hub a turn every ``BUSY_YIELD`` seconds;
- a greenlet that schedules work on the loop (``runner.quit()`` from a locustfile greenlet)
  wakes it at once (``HubEventLoop.call_soon`` / ``call_at``).

What keeps the master's timing is that locustfile code never runs *on* the loop: the master
hands it to greenlets (see ``lcore.greenlet_calls``), so a listener that sleeps parks its own
greenlet, never the heartbeats.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
from gevent import monkey
from gevent.hub import get_hub

T = TypeVar("T")
if TYPE_CHECKING:
    from contextvars import Context

    from typing_extensions import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")

# the longest the hub goes without a turn while the loop has work queued
BUSY_YIELD = 0.02

# gevent's patch_select removes EpollSelector from `selectors`; the original is kept aside
def _original_selector() -> type[selectors.BaseSelector]:
    found: type[selectors.BaseSelector] | None
    if monkey.is_module_patched("selectors"):
        found = monkey.get_original("selectors", "EpollSelector")
    else:
        found = getattr(selectors, "EpollSelector", None)
    if found is None:  # pragma: no cover - not Linux
        found = monkey.get_original("selectors", "PollSelector")
    assert found is not None
    return found


_EpollSelector = _original_selector()


class HubSelector(_EpollSelector):  # type: ignore[misc, valid-type]
    """A real epoll selector whose blocking wait happens in gevent's hub."""

    def __init__(self) -> None:
        super().__init__()
        self._last_yield = time.monotonic()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            now = time.monotonic()
            if now - self._last_yield >= BUSY_YIELD:
                self._last_yield = now
                gevent.sleep(0)  # greenlets get their turn even while the loop is busy
            return ready
        hub = get_hub()
        watcher = hub.loop.io(self.fileno(), 1)  # the epoll fd is readable when any fd is ready
        try:
            if timeout is None:
                hub.wait(watcher)
            else:
                # False: a silent timeout, as gevent documents it (its stubs do not say so)
                with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
                    hub.wait(watcher)
        finally:
            watcher.close()
        self._last_yield = time.monotonic()
        ready = super().select(0)
        return ready


class HubEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on ``HubSelector`` that a greenlet can schedule work on."""

    def __init__(self) -> None:
        super().__init__(HubSelector())
        self._owner: Any = None

    def run_forever(self) -> None:
        self._owner = gevent.getcurrent()
        try:
            super().run_forever()
        finally:
            self._owner = None

    def _wake_if_foreign(self) -> None:
        owner = self._owner
        if owner is not None and gevent.getcurrent() is not owner:
            # the loop may be asleep in the hub: the self-pipe makes its epoll fd readable
            # asyncio's selector loops have it; typeshed leaves their private methods out
            self._write_to_self()  # type: ignore[attr-defined]

    def call_soon(
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> asyncio.Handle:
        handle = super().call_soon(callback, *args, context=context)
        self._wake_if_foreign()
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, context=context)
        self._wake_if_foreign()
        return handle


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a ``HubEventLoop`` (Python 3.10 has no loop_factory)."""
    loop = HubEventLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
