"""The master's side of ``-f -``: answers workers that fetch the locustfile's tree (asyncio).

Kept apart from ``lcore.master``, which only routes ``BundleRequest`` here. What is shipped,
and how it is bounded, is ``lcore.bundle``'s business. Packing reads and compresses up to the
cap (a second or more for 50 MB): it runs on a native thread of gevent's pool, because the
master's threads are monkey-patched greenlets and the loop must keep its timing meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import bundle
from . import protocol as p
from ._version import PROTOCOL_VERSION
from .greenlet_calls import on_native_thread

log = logging.getLogger("lcore.master")

MAX_WAITING = 1000


class BundleServer:
    """Answers workers started with ``-f -``: the locustfile's tree, packed once (in a thread,
    on the first request) and sent chunk by chunk; a bundle over the cap is refused, logged once."""

    def __init__(
        self,
        source: bundle.Source | None,
        pack: Callable[[bundle.Source], bundle.Bundle] = bundle.pack,
    ) -> None:
        self.source = source
        self.pack = pack
        self._bundle: bundle.Bundle | None = None
        self._error = "" if source is not None else (
            "This master does not ship its locustfile: it runs its own workers (start it with --master)"
        )
        self._packing: asyncio.Task[None] | None = None
        # asked while packing: answered as soon as it is done (bounded; others ask again)
        self._waiting: dict[str, tuple[p.BundleRequest, Callable[[str, p.Message], None]]] = {}
        self.sent = 0

    def answer(self, node_id: str, request: p.BundleRequest, send: Callable[[str, p.Message], None]) -> None:
        if request.protocol != PROTOCOL_VERSION:
            error = f"protocol version {request.protocol} does not match the master's {PROTOCOL_VERSION}"
            send(node_id, p.BundleChunk("", 0, 0, b"", error))
        elif self._error:
            send(node_id, p.BundleChunk("", 0, 0, b"", self._error))
        elif self._bundle is None:
            if len(self._waiting) < MAX_WAITING:
                self._waiting[node_id] = (request, send)
            if self._packing is None:
                self._packing = asyncio.get_running_loop().create_task(self._pack())
        else:
            b, offset = self._bundle, min(request.offset, len(self._bundle.data))
            if offset == 0:
                self.sent += 1
                if self.sent <= 20 or self.sent % 100 == 0:  # a flood must not flood the log
                    log.info("Sending the locustfile directory %s to %s", bundle.describe(b), node_id)
            send(node_id, p.BundleChunk(b.digest, len(b.data), offset, b.chunk(offset)))

    async def _pack(self) -> None:
        assert self.source is not None
        try:
            self._bundle = await on_native_thread(self.pack, self.source)
        except bundle.BundleError as e:
            self._error = str(e)
            log.error("%s", e)
        except Exception as e:  # an unreadable tree must not take the master down
            self._error = f"The master could not pack its locustfile directory: {type(e).__name__}: {e}"
            log.exception("Packing the locustfile directory failed")
        waiting, self._waiting = self._waiting, {}
        for node_id, (request, send) in waiting.items():
            self.answer(node_id, request, send)

    def close(self) -> None:
        if self._packing is not None:
            self._packing.cancel()
