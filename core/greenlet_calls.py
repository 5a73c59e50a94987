"""Where the master runs a locustfile's code: on greenlets, never on its asyncio loop.

``LocustfileCalls`` owns one greenlet that runs calls one after another, in the order they
were submitted (event listeners, message handlers registered without ``concurrent=True``:
Locust runs those in order too), and spawns a greenlet of its own for each concurrent one.
The loop can ``await drained()`` where Locust's order matters (``test_stop`` listeners finish
before the final report) and ``await call(fn)`` for a value (a shape's ``tick()``).
A call that raises is logged with its traceback and counted; it never reaches the loop.

``on_native_thread(fn)`` is for the master's own CPU-heavy work on data nobody changes any more
(packing a bundle, encoding a metrics push): a real thread of gevent's pool, so the loop keeps
its timing meanwhile (the GIL is handed back every switch interval).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent.event import Event
from gevent.pool import Group

log = logging.getLogger(__name__)
T = TypeVar("T")


class LocustfileCalls:
    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._wakeup = Event()
        self._busy = False
        self._idle_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.group = Group()  # concurrent calls and the serial runner: joined by close()
        self.errors = 0
        self._runner = self.group.spawn(self._run)

    # --- from the master's loop ----------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` after every call submitted before it."""
        self._queue.append((fn, args, kwargs))
        self._wakeup.set()

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn`` on a greenlet of its own, at once."""
        self.group.spawn(self._guarded, fn, args, kwargs)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._busy

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until every submitted call has returned; False if ``timeout`` passed first."""
        if self.idle:
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._idle_waiters.append((loop, future))
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a greenlet of its own; its value, or its exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def run() -> None:
            try:
                value = fn(*args)
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, e)
            else:
                loop.call_soon_threadsafe(_settle, future, value, None)

        self.group.spawn(run)
        return await future

    def close(self, timeout: float = 5.0) -> None:
        self._runner.kill(block=False)
        self.group.join(timeout=timeout)
        self.group.kill(block=True, timeout=1)

    # --- on the greenlets ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            while self._queue:
                fn, args, kwargs = self._queue.popleft()
                self._busy = True
                try:
                    self._guarded(fn, args, kwargs)
                finally:
                    self._busy = False
            waiters, self._idle_waiters = self._idle_waiters, []
            for loop, future in waiters:
                loop.call_soon_threadsafe(_settle, future, None, None)
            self._wakeup.clear()
            self._wakeup.wait()

    def _guarded(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            fn(*args, **kwargs)
        except gevent.GreenletExit:
            raise
        except Exception:
            self.errors += 1
            log.exception("Error in locustfile code run on the master (%s)", _name(fn))


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


async def on_native_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a real thread; a greenlet waits for it and hands the result to the loop
    (the master's ``threading`` is gevent's, so an executor would run on the hub)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def guarded() -> tuple[Any, BaseException | None]:
        # caught on the thread: gevent's pool would print the traceback of what escapes it
        try:
            return fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            return None, e

    def wait() -> None:
        value, error = gevent.get_hub().threadpool.apply(guarded)
        loop.call_soon(_settle, future, value, error)

    gevent.spawn(wait)
    return await future


async def on_greenlet(fn: Callable[[], T]) -> T:
    """``fn()`` on a greenlet of its own (for blocking I/O gevent has patched); the loop
    awaits its value."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            loop.call_soon_threadsafe(_settle, future, None, e)
        else:
            loop.call_soon_threadsafe(_settle, future, value, None)

    gevent.spawn(run)
    return await future
