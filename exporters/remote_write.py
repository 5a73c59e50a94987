"""``--prometheus-remote-write URL``: the /metrics series pushed to a Prometheus (or Mimir,
Thanos, VictoriaMetrics...) remote-write receiver, from the master's loop with aiohttp.

Auth: basic (``user:password@`` in the URL, or ``auth="user:password"``) or bearer
(``token``). A 2xx is success; anything else is logged once (``push.FailureLog``) and the next
push sends everything again. The final push retries a 5xx, a 429 or a connection error twice.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from lcore._version import __version__
from lcore.greenlet_calls import on_native_thread

from . import remote_write_wire as wire
from .push import PUSH_TIMEOUT, FailureLog, redact_url

RETRY_DELAYS = (0.5, 1.5)
"""Waits before the final push's retries."""


class RemoteWrite:
    def __init__(
        self,
        registry: Any,
        url: str,
        *,
        labels: Callable[[], Mapping[str, str]] = dict,
        auth: str | None = None,
        token: str | None = None,
        timeout: float = PUSH_TIMEOUT,
        clock: Callable[[], float] = time.time,
        cpu: Callable[[Callable[[], bytes]], Awaitable[bytes]] = on_native_thread,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.name = f"Prometheus remote write to {redact_url(url)}"
        self._auth: aiohttp.BasicAuth | None = None
        if parts.username is not None:
            self._auth = aiohttp.BasicAuth(
                urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
            )
            host = parts.hostname or ""
            netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
            url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        if auth:
            user, _, password = auth.partition(":")
            self._auth = aiohttp.BasicAuth(user, password)
        self.url = url
        self.registry = registry
        self.labels = labels
        self.timeout = timeout
        self.clock = clock
        self.cpu = cpu
        self.headers = {
            "Content-Type": wire.CONTENT_TYPE,
            "Content-Encoding": wire.CONTENT_ENCODING,
            "X-Prometheus-Remote-Write-Version": wire.PROTOCOL_VERSION,
            "User-Agent": f"lcore/{__version__}",
        }
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._session: aiohttp.ClientSession | None = None
        self.failures = FailureLog(self.name)
        self.pushes = 0
        """Pushes the receiver accepted."""

    def body(self, families: list[Any] | None = None, labels: Mapping[str, str] | None = None) -> bytes:
        """The compressed WriteRequest of ``families`` (default: the series as they are now)."""
        if families is None:
            families = list(self.registry.collect())
        series = wire.series_of(families, self.labels() if labels is None else labels)
        return wire.compress(wire.encode_write_request(series, int(self.clock() * 1000)))

    async def push(self, final: bool = False) -> bool:
        # read on the loop (a consistent state, as a scrape reads it); encoded off it
        families, labels = list(self.registry.collect()), dict(self.labels())
        body = await self.cpu(lambda: self.body(families, labels))
        if not final or self.failures.failing:  # a failing receiver: one try, not three
            return await self._push(body, (None,))
        try:  # retried, within a bound: the run's exit waits for it
            return await asyncio.wait_for(self._push(body, (*RETRY_DELAYS, None)), 2 * self.timeout)
        except asyncio.TimeoutError:
            self.failures.failed(f"no answer within {2 * self.timeout:g} s")
            return False

    async def _push(self, body: bytes, delays: tuple[float | None, ...]) -> bool:
        reason: str | None = "not sent"
        for delay in delays:
            retry, reason = await self._send(body)
            if reason is None:
                self.pushes += 1
                self.failures.succeeded()
                return True
            if not retry or delay is None:
                break
            await asyncio.sleep(delay)
        self.failures.failed(reason or "not sent")
        return False

    async def _send(self, body: bytes) -> tuple[bool, str | None]:
        """(worth a retry, why it failed) or (False, None) when the receiver took it."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        try:
            async with self._session.post(
                self.url, data=body, headers=self.headers, auth=self._auth
            ) as response:
                if 200 <= response.status < 300:
                    return False, None
                text = " ".join((await response.text(errors="replace"))[:200].split())
                retry = response.status >= 500 or response.status == 429
                return retry, f"HTTP {response.status}{': ' + text if text else ''}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            return True, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
