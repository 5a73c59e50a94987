"""What keeps the status port answering under slow or many connections (web.py uses these).

- A request head must arrive within ``HEAD_TIMEOUT`` of the connection opening (or of the
  previous answer): aiohttp's keep-alive timer closes a connection whose head is still
  incomplete, so it is set to that timeout.
- A request body must arrive within ``BODY_TIMEOUT`` (``read_body``).
- At most ``max_connections`` connections at once (fewer when the open-file limit is low): the
  connection past the cap closes the oldest one that is not being answered, so a slow client
  that holds a socket never locks a probe out.
- The open-file limit is raised to its hard limit, as workers do.
- asyncio's "socket.accept() out of system resource" tracebacks (one per accept attempt when
  file descriptors run out) are logged once per ``ACCEPT_LOG_INTERVAL`` with a count.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lcore.fd_limit import raise_open_file_limit

__all__ = [
    "ACCEPT_LOG_INTERVAL",
    "BODY_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "HEAD_TIMEOUT",
    "AcceptErrorFilter",
    "ConnectionCap",
    "connection_cap_for",
    "raise_open_file_limit",
    "read_body",
]

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 10.0
"""Seconds a connection has to send a complete request head (and idle keep-alive time)."""
BODY_TIMEOUT = 10.0
"""Seconds a request has to send its body (at most 64 KiB)."""
DEFAULT_MAX_CONNECTIONS = 512
ACCEPT_LOG_INTERVAL = 10.0
_FD_RESERVE = 64  # descriptors left for the workers' sockets, logs, reports


def connection_cap_for(max_connections: int = DEFAULT_MAX_CONNECTIONS) -> int:
    """``max_connections``, or fewer when the open-file limit would run out first."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    return max(8, min(max_connections, (soft - _FD_RESERVE) // 2))


async def read_body(request: web.Request, timeout: float = BODY_TIMEOUT) -> None:
    """Read (and cache: post(), json() and the Flask bridge use it) the body within
    ``timeout``; raises ``web.HTTPRequestTimeout`` when it does not come."""
    if not request.can_read_body:
        return
    try:
        # wait_for, not asyncio.timeout(): Python 3.10 has no asyncio.timeout
        await asyncio.wait_for(request.read(), timeout)
    except asyncio.TimeoutError:
        raise web.HTTPRequestTimeout(text="The request body did not arrive in time") from None


class ConnectionCap:
    """A protocol factory around aiohttp's ``web.Server`` that holds the connection count at
    ``cap``; ``busy`` holds the handlers answering a request (the middleware keeps it)."""

    def __init__(self, server: web.Server, cap: int) -> None:
        self.server = server
        self.cap = cap
        self.busy: set[Any] = set()
        self.evicted = 0

    def __call__(self) -> Any:
        # oldest first; a closed one stays listed until the loop's next turn, so skip those
        open_ones = [h for h in self.server.connections if h.transport is not None]
        if len(open_ones) >= self.cap:
            for handler in open_ones:
                if handler not in self.busy:
                    handler.force_close()
                    self.evicted += 1
                    break
        return self.server()


class AcceptErrorFilter:
    """An event-loop exception handler that rate-limits the accept-error tracebacks and passes
    everything else to the handler it replaced."""

    def __init__(
        self,
        previous: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object] | None,
        interval: float = ACCEPT_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.previous = previous
        self.interval = interval
        self.clock = clock
        self._last = -float("inf")
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = self.clock()
            if now - self._last < self.interval:
                self.suppressed += 1
                return
            self._last = now
            log.error(
                "The status server cannot accept connections: %s (%d more such errors since "
                "the last message; see the open-file limit, ulimit -n)",
                context.get("exception"),
                self.suppressed,
            )
            self.suppressed = 0
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)
