"""``/metrics`` answered without holding the master's event loop.

A scrape over 1,000 request names is about 67,000 samples: building and encoding them takes
hundreds of milliseconds, long enough for heartbeats to go unanswered while it runs on the
loop. So a scrape is split:

1. on the loop, ``LcoreCollector.snapshot_steps`` copies the figures it needs, a slice of
   entries at a time, and the loop gets a turn between slices;
2. in a real OS thread (gevent's patching leaves one available), the snapshot becomes metric
   families and text; the thread reads only the snapshot, and hands the body back through
   ``loop.call_soon_threadsafe``. It holds the GIL at most one switch interval (5 ms) at a
   time, so the loop keeps running beside it.

Scrapes are one at a time: a scrape that arrives while another renders waits for it, and is
answered with that body when it asked for the same format (it is as fresh as its own would
be).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .prometheus import LcoreCollector, Snapshot

__all__ = ["MetricsRenderer", "run_in_thread"]

T = TypeVar("T")


def _start_new_thread() -> Callable[..., Any]:
    """``_thread.start_new_thread`` as it was before gevent patched it (a real OS thread)."""
    import _thread

    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return _thread.start_new_thread
    if monkey.is_module_patched("_thread") or monkey.is_module_patched("thread"):
        return monkey.get_original("_thread", "start_new_thread")  # type: ignore[no-any-return]
    return _thread.start_new_thread


async def run_in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in an OS thread of its own; the loop runs on meanwhile.

    ``fn`` must not touch the event loop, gevent, or locks shared with the loop's thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.cancelled():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def body() -> None:
        try:
            value: Any = fn()
            ok = True
        except BaseException as e:  # handed to the awaiting coroutine, which re-raises it
            value, ok = e, False
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:  # the loop closed meanwhile (the master is gone): nobody waits
            pass

    _start_new_thread()(body, ())
    return await future


class _Families:
    """What an encoder iterates (it only calls ``collect()``)."""

    def __init__(self, families: Iterable[Any]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Any]:
        return self._families


class MetricsRenderer:
    """Renders lcore's collector plus ``others`` (the process collector) for one scrape."""

    def __init__(
        self,
        collector: LcoreCollector,
        others: Iterable[Collector] = (),
        *,
        thread: Callable[[Callable[[], Any]], Any] = run_in_thread,
    ) -> None:
        self.collector = collector
        self.others = list(others)
        self._thread = thread
        self._lock = asyncio.Lock()
        self._last: tuple[str, float, bytes] | None = None  # (content type, finished, body)
        self.renders = 0

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (text format, or OpenMetrics if ``accept`` asks for it) and its type."""
        encoder, content_type = choose_encoder(accept)
        asked = time.monotonic()
        async with self._lock:
            last = self._last
            if last is not None and last[0] == content_type and last[1] >= asked:
                return last[2], content_type  # rendered while this scrape waited
            snapshot = Snapshot()
            for _ in self.collector.snapshot_steps(snapshot):
                await asyncio.sleep(0)
            others = self.others

            def encode() -> bytes:
                families = self.collector.build(snapshot)
                for collector in others:
                    families.extend(collector.collect())
                return encoder(_Families(families))  # type: ignore[no-any-return]

            body = await self._thread(encode)
            self.renders += 1
            self._last = (content_type, time.monotonic(), body)
            return body, content_type
