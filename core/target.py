"""An embedded HTTP/1.1 target for demos, tests and benchmarks: plain asyncio, no gevent.

Run it with ``python -m lcore.target --host 127.0.0.1 --port 8080`` (it prints
``lcore target listening on http://HOST:PORT`` once ready) or in a thread with ``Target``.

Endpoints (any method; HEAD answers like GET without a body; ``?delay=MS`` delays any answer)::

    /                   200, a small fixed text body
    /<anything else>    200, "ok"
    /status/<code>      that status; 1xx, 204 and 304 carry no body
    /delay/<ms>         200 after <ms> milliseconds
    /bytes/<n>          200, n bytes of b"x"
    /redirect/<n>       302 to /redirect/<n-1>; /redirect/1 goes to /
    /redirect-to?url=U&status=S   S (default 302) to U, which may be absolute
    /json               a small JSON document
    /echo               JSON {method, path, query, headers, body} of the request
    /chunked?chunks=N   a chunked body of N lines "chunk <i>"
    /gzip, /deflate     JSON bodies with that Content-Encoding
    /cookies/set?k=v    Set-Cookie k=v (Path=/) for every pair; JSON of what was set
    /cookies            JSON {"cookies": {...}} of the request's Cookie header
    /close              answers with Connection: close, then closes
    GET /__stats        JSON {"total", "connections", "requests": {"METHOD /path": n}}, and
                        with a stall "stall": {"every", "length", "origin"} and the wall-clock
                        times of the first and last counted request
    POST /__reset       zeroes all counters

A stall (``--stall-every P --stall-for S``, ``Target(stall=Stall(P, S))``) makes the target
stop answering for the last S seconds of every P seconds, counted from when it started
listening (``origin``, wall clock): a request that arrives during a stall is answered when
the stall ends (after its own delay, if any). That is a deterministic schedule a load test's
figures can be checked against (``Stall.wait_at``).

The two control paths are not counted; every other request counts under (method, path
without query). Request bodies may use Content-Length or chunked; pipelining is safe.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl

_T = TypeVar("_T")

MAX_HEAD = 65536
MAX_BODY = 64 * 1024 * 1024
MAX_DELAY_MS = 60_000
MAX_BYTES = 100 * 1024 * 1024

_ROOT_BODY = b"lcore target\n"
_OTHER_BODY = b"ok\n"
_JSON_BODY = json.dumps({"message": "hello from lcore", "items": [1, 2, 3], "ok": True}).encode()
_NO_BODY_STATUSES = frozenset({204, 304})


class Stall(NamedTuple):
    """Stop answering for the last ``length`` seconds of every ``every`` seconds."""

    every: float
    length: float

    def wait_at(self, elapsed: float) -> float:
        """How long a request arriving ``elapsed`` s after the origin waits for the stall to
        end (0 outside a stall)."""
        phase = elapsed % self.every
        start = self.every - self.length
        return self.every - phase if phase >= start else 0.0

    def truth(self, start: float, end: float, rate: float) -> list[float]:
        """The waits (s) of a schedule of ``rate`` requests per second, evenly spread from
        ``start`` to ``end`` (seconds after the origin): what a client that keeps to its
        schedule sees from this stall, before the service time itself."""
        n = max(1, round((end - start) * rate))
        step = (end - start) / n
        return [self.wait_at(start + (i + 0.5) * step) for i in range(n)]

    def grid_truth(self, grids: Sequence[tuple[float, float]], period: float) -> list[float]:
        """The waits (s) of paced users' grids: each ``(first, last)`` (seconds after the
        origin) has a slot every ``period`` s from ``first`` up to ``last``."""
        waits = []
        for first, last in grids:
            n = int((last - first) / period + 1e-9)
            waits += [self.wait_at(first + k * period) for k in range(n + 1)]
        return waits


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _head(status: int, headers: Sequence[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if not keep_alive:
        lines.append("Connection: close")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain",
    headers: Sequence[tuple[str, str]] = (),
    *,
    keep_alive: bool = True,
    head_only: bool = False,
) -> bytes:
    if status in _NO_BODY_STATUSES or status < 200:
        return _head(status, headers, keep_alive)
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
    head = _head(status, all_headers, keep_alive)
    return head if head_only else head + body


# The hot answers, built once: the benchmarks hammer these.
_CANNED = {
    (b"/", True): _response(200, _ROOT_BODY),
    (b"/", False): _response(200, _ROOT_BODY, keep_alive=False),
    (b"", True): _response(200, _OTHER_BODY),
    (b"", False): _response(200, _OTHER_BODY, keep_alive=False),
}


class _Request:
    __slots__ = ("method", "target", "path", "query", "headers", "body", "version")

    def __init__(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        version: str,
    ) -> None:
        self.method = method
        self.target = target
        path, _, self.query = target.partition("?")
        self.path = path
        self.headers = headers
        self.body = body
        self.version = version

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def params(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection(asyncio.Protocol):
    """One client connection: parses requests in order and answers them in order."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        # While a delayed answer is pending, later pipelined requests wait in buf.
        self.busy = False
        self.closing = False
        self.continue_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.target._closing:
            transport.abort()  # accepted as the target stopped
            return
        self.target._connections += 1
        self.target._open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.target._open.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy and not self.closing:
            self._process()

    def _process(self) -> None:
        buf = self.buf
        pos = 0
        try:
            while not self.closing and not self.busy:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if len(buf) - pos > MAX_HEAD:
                        raise _BadRequest(431, "request head too large")
                    break
                consumed = self._one(buf, pos, end)
                if consumed < 0:
                    break
                pos = consumed
        except _BadRequest as e:
            self._write(_response(e.status, f"{e}\n".encode(), keep_alive=False), close=True)
            pos = len(buf)
        del buf[:pos]

    def _one(self, buf: bytearray, pos: int, end: int) -> int:
        """Handles the request whose head ends at ``end``; returns where the next one starts,
        or -1 when its body has not fully arrived yet."""
        if buf.startswith(b"GET / HTTP/1.1\r\n", pos) and self._fast_get_root(buf, pos, end):
            return end + 4
        lines = buf[pos:end].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(400, "malformed request line")
        if not version.startswith("HTTP/1."):
            raise _BadRequest(505, "HTTP version not supported")
        headers: list[tuple[str, str]] = []
        length = 0
        chunked = False
        expect_continue = False
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "malformed header line")
            value = value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == "content-length":
                if not value.isdigit():
                    raise _BadRequest(400, "bad Content-Length")
                length = int(value)
            elif lowered == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lowered == "expect":
                expect_continue = value.lower() == "100-continue"
        start = end + 4
        if chunked:
            decoded = _dechunk(buf, start)
            if decoded is None:
                self._maybe_continue(expect_continue)
                return -1
            body, after = decoded
        else:
            if length > MAX_BODY:
                raise _BadRequest(413, "request body too large")
            after = start + length
            if len(buf) < after:
                self._maybe_continue(expect_continue)
                return -1
            body = bytes(buf[start:after])
        self.continue_sent = False
        request = _Request(method, target, headers, body, version)
        self.target._handle(self, request)
        return after

    def _fast_get_root(self, buf: bytearray, pos: int, end: int) -> bool:
        # The benchmark's request: a bodyless keep-alive GET of "/". No header that changes
        # framing or connection state may be present, else take the general path.
        head = buf[pos + 16 : end].lower()
        if b"content-length" in head or b"transfer-encoding" in head or b"connection" in head:
            return False
        target = self.target
        if target.stall is not None:
            return False  # the general path holds answers during a stall
        target._total += 1
        counts = target._counts
        key = ("GET", "/")
        counts[key] = counts.get(key, 0) + 1
        transport = self.transport
        if transport is not None:
            transport.write(_CANNED[(b"/", True)])
        return True

    def _maybe_continue(self, expect_continue: bool) -> None:
        if expect_continue and not self.continue_sent:
            self.continue_sent = True
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _write(self, data: bytes, *, close: bool = False) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(data)
        if close:
            self.closing = True
            transport.close()

    def send_later(self, delay: float, data: bytes, close: bool) -> None:
        self.busy = True

        def finish() -> None:
            self.busy = False
            self._write(data, close=close)
            if self.buf and not self.closing:
                self._process()

        asyncio.get_running_loop().call_later(delay, finish)


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decodes a chunked body starting at ``pos``: (body, end) or None if incomplete."""
    parts: list[bytearray] = []
    total = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 1024:
                raise _BadRequest(400, "bad chunk size line")
            return None
        size_field = buf[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise _BadRequest(400, "bad chunk size")
        pos = eol + 2
        if size == 0:
            # Trailer fields end with an empty line; none are expected, all are skipped.
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                if eol == pos:
                    return b"".join(parts), eol + 2
                pos = eol + 2
        total += size
        if total > MAX_BODY:
            raise _BadRequest(413, "request body too large")
        if len(buf) < pos + size + 2:
            return None
        parts.append(buf[pos : pos + size])
        pos += size + 2


async def _turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class Target:
    """The embedded target. ``start()`` serves from a background thread; ``run()`` serves
    in the calling thread until ``stop()`` or a signal."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, stall: Stall | None = None) -> None:
        if stall is not None and not 0 < stall.length < stall.every:
            raise ValueError("a stall must be shorter than its period, and longer than 0")
        self.host = host
        self.port = port
        self.stall = stall
        self.origin = 0.0  # wall clock when the target started listening (the stall's origin)
        self._origin_loop = 0.0  # the same moment on the loop's clock
        self._first_request: float | None = None
        self._last_request: float | None = None
        self._counts: dict[tuple[str, str], int] = {}
        self._total = 0
        self._connections = 0
        self._open: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._closing = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------

    async def _open_server(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = asyncio.Event()
        self._closing = False
        self._server = await loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.origin, self._origin_loop = time.time(), loop.time()

    async def _serve_until_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()
        await self._close_server()

    async def _close_server(self) -> None:
        if self._server is not None:
            self._closing = True
            # Stop accepting first, then give connections accepted already the turns they need
            # to reach connection_made, which aborts them: Python 3.11 drops one accepted as the
            # server closes without ever closing its socket (Server._attach asserts).
            loop = asyncio.get_running_loop()
            for sock in self._server.sockets:
                loop.remove_reader(sock.fileno())
            await _turns(3)
            self._server.close()
            for conn in list(self._open):
                if conn.transport is not None:
                    conn.transport.abort()
            await self._server.wait_closed()
            await _turns(3)  # an aborted transport closes its socket on the next turn
            self._server = None

    def start(self, timeout: float = 10.0) -> Target:
        """Starts serving from a daemon thread; returns once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("target already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def thread_main() -> None:
            async def main() -> None:
                try:
                    await self._open_server()
                except BaseException as e:
                    failure.append(e)
                    ready.set()
                    return
                ready.set()
                await self._serve_until_stopped()

            asyncio.run(main())

        self._thread = threading.Thread(target=thread_main, name="lcore-target", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("target did not start listening in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    start_in_thread = start

    def run(self, on_ready: Callable[[Target], None] | None = None) -> None:
        """Serves in the calling thread until ``stop()``, SIGINT or SIGTERM."""

        async def main() -> None:
            await self._open_server()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._request_stop)
            if on_ready is not None:
                on_ready(self)
            await self._serve_until_stopped()

        asyncio.run(main())

    def _request_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops serving and closes every connection; safe to call twice."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._request_stop)
            except RuntimeError:
                pass  # the loop closed meanwhile
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Target:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- counters ----------------------------------------------------------------------

    def _in_loop(self, fn: Callable[[], _T]) -> _T:
        """Runs ``fn`` on the target's loop thread, so counters are read consistently."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return fn()
        try:
            if asyncio.get_running_loop() is loop:
                return fn()
        except RuntimeError:
            pass

        async def call() -> _T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10.0)

    def counts(self) -> dict[tuple[str, str], int]:
        """Requests served per (method, path without query)."""
        return self._in_loop(lambda: dict(self._counts))

    @property
    def total(self) -> int:
        return self._in_loop(lambda: self._total)

    @property
    def connections(self) -> int:
        """Connections accepted since the start (or the last reset)."""
        return self._in_loop(lambda: self._connections)

    @property
    def open_connections(self) -> int:
        """Connections open now (the clients have not closed them)."""
        return self._in_loop(lambda: len(self._open))

    def stats(self) -> dict[str, Any]:
        return self._in_loop(self._stats)

    def _stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "total": self._total,
            "connections": self._connections,
            "requests": {f"{m} {p}": n for (m, p), n in self._counts.items()},
        }
        if self.stall is not None:
            stats["stall"] = {
                "every": self.stall.every,
                "length": self.stall.length,
                "origin": self.origin,
            }
            stats["first_request"] = self._first_request
            stats["last_request"] = self._last_request
        return stats

    def reset(self) -> None:
        self._in_loop(self._reset)

    def _reset(self) -> None:
        self._counts.clear()
        self._total = 0
        self._connections = 0
        self._first_request = self._last_request = None

    # -- routing -----------------------------------------------------------------------

    def _handle(self, conn: _Connection, req: _Request) -> None:
        keep_alive = _keep_alive(req)
        head_only = req.method == "HEAD"
        path = req.path
        if path == "/__stats" and req.method == "GET":
            body = json.dumps(self._stats()).encode()
            conn._write(
                _response(200, body, "application/json", keep_alive=keep_alive, head_only=False),
                close=not keep_alive,
            )
            return
        if path == "/__reset" and req.method == "POST":
            self._reset()
            conn._write(_response(200, b"reset\n", keep_alive=keep_alive), close=not keep_alive)
            return
        self._total += 1
        key = (req.method, path)
        self._counts[key] = self._counts.get(key, 0) + 1

        delay_ms = 0.0
        if "delay=" in req.query:
            for name, value in req.params():
                if name == "delay":
                    delay_ms = _number(value)
        if path.startswith("/delay/"):
            delay_ms = _number(path[7:])
        if path == "/close":
            keep_alive = False

        canned = _CANNED.get((b"/" if path == "/" else b"", keep_alive))
        if path in _ROUTES:
            data = _ROUTES[path](req, keep_alive, head_only)
        elif (prefixed := _prefix_route(path)) is not None:
            data = prefixed(req, keep_alive, head_only)
        else:
            assert canned is not None
            data = canned
            if head_only:
                data = data[: data.index(b"\r\n\r\n") + 4]
        delay = min(delay_ms, MAX_DELAY_MS) / 1000.0
        if self.stall is not None:
            now = time.time()
            if self._first_request is None:
                self._first_request = now
            self._last_request = now
            assert self._loop is not None
            delay += self.stall.wait_at(self._loop.time() - self._origin_loop)
        if delay > 0:
            conn.send_later(delay, data, close=not keep_alive)
        else:
            conn._write(data, close=not keep_alive)


def _keep_alive(req: _Request) -> bool:
    connection = (req.header("connection") or "").lower()
    if req.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if value > 0 else 0.0


_Route = Callable[[_Request, bool, bool], bytes]


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _route_json(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    return _response(
        200, _JSON_BODY, "application/json", keep_alive=keep_alive, head_only=head_only
    )


def _route_echo(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    headers: dict[str, str] = {}
    for name, value in req.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    doc = {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "args": dict(req.params()),
        "headers": headers,
        "body": req.body.decode("utf-8", "replace"),
    }
    return _response(
        200, _json(doc), "application/json", keep_alive=keep_alive, head_only=head_only
    )


def _route_chunked(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    count = 3
    for name, value in req.params():
        if name == "chunks" and value.isdigit():
            count = min(int(value), 10_000)
    head = _head(
        200, [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")], keep_alive
    )
    if head_only:
        return head
    pieces = [head]
    for i in range(count):
        line = f"chunk {i}\n".encode()
        pieces.append(b"%x\r\n%s\r\n" % (len(line), line))
    pieces.append(b"0\r\n\r\n")
    return b"".join(pieces)


def _route_gzip(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    compressor = zlib.compressobj(wbits=31)
    body = compressor.compress(_json({"gzipped": True, "method": req.method})) + compressor.flush()
    return _response(
        200,
        body,
        "application/json",
        [("Content-Encoding", "gzip")],
        keep_alive=keep_alive,
        head_only=head_only,
    )


def _route_deflate(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    body = zlib.compress(_json({"deflated": True, "method": req.method}))
    return _response(
        200,
        body,
        "application/json",
        [("Content-Encoding", "deflate")],
        keep_alive=keep_alive,
        head_only=head_only,
    )


def _route_cookies_set(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    pairs = [(k, v) for k, v in req.params() if k != "delay"]
    set_cookie = [("Set-Cookie", f"{k}={v}; Path=/") for k, v in pairs]
    body = _json({"set": dict(pairs)})
    return _response(
        200, body, "application/json", set_cookie, keep_alive=keep_alive, head_only=head_only
    )


def _route_cookies(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    cookies: dict[str, str] = {}
    for name, value in req.headers:
        if name.lower() == "cookie":
            for item in value.split(";"):
                key, _, val = item.strip().partition("=")
                if key:
                    cookies[key] = val
    body = _json({"cookies": cookies})
    return _response(200, body, "application/json", keep_alive=keep_alive, head_only=head_only)


def _route_close(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    return _response(200, b"closing\n", keep_alive=False, head_only=head_only)


def _route_redirect_to(req: _Request, keep_alive: bool, head_only: bool) -> bytes:
    params = dict(req.params())
    status = int(params["status"]) if params.get("status", "").isdigit() else 302
    location = params.get("url", "/")
    return _response(
        status, b"", headers=[("Location", location)], keep_alive=keep_alive, head_only=head_only
    )


_ROUTES: dict[str, _Route] = {
    "/json": _route_json,
    "/echo": _route_echo,
    "/chunked": _route_chunked,
    "/gzip": _route_gzip,
    "/deflate": _route_deflate,
    "/cookies/set": _route_cookies_set,
    "/cookies": _route_cookies,
    "/close": _route_close,
    "/redirect-to": _route_redirect_to,
}


def _route_status(req: _Request, rest: str, keep_alive: bool, head_only: bool) -> bytes:
    code = int(rest) if rest.isdigit() and 100 <= int(rest) <= 999 else 400
    if code < 200:
        # An interim answer alone would leave the client waiting: follow it with a 200.
        return _response(code) + _response(200, b"after interim\n", keep_alive=keep_alive)
    body = f"{code} {_reason(code)}\n".encode()
    return _response(code, body, keep_alive=keep_alive, head_only=head_only)


def _route_delay(req: _Request, rest: str, keep_alive: bool, head_only: bool) -> bytes:
    return _response(
        200, f"delayed {rest} ms\n".encode(), keep_alive=keep_alive, head_only=head_only
    )


def _route_bytes(req: _Request, rest: str, keep_alive: bool, head_only: bool) -> bytes:
    size = min(int(rest), MAX_BYTES) if rest.isdigit() else 0
    return _response(
        200, b"x" * size, "application/octet-stream", keep_alive=keep_alive, head_only=head_only
    )


def _route_redirect(req: _Request, rest: str, keep_alive: bool, head_only: bool) -> bytes:
    hops = int(rest) if rest.isdigit() else 1
    location = f"/redirect/{hops - 1}" if hops > 1 else "/"
    return _response(302, b"", headers=[("Location", location)], keep_alive=keep_alive)


_PREFIX_ROUTES: tuple[tuple[str, Callable[[_Request, str, bool, bool], bytes]], ...] = (
    ("/status/", _route_status),
    ("/delay/", _route_delay),
    ("/bytes/", _route_bytes),
    ("/redirect/", _route_redirect),
)


def _prefix_route(path: str) -> _Route | None:
    for prefix, route in _PREFIX_ROUTES:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            return lambda req, keep_alive, head_only: route(req, rest, keep_alive, head_only)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lcore.target", description="The embedded lcore HTTP target."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind, 0 picks a free one")
    parser.add_argument(
        "--stall-every",
        type=float,
        metavar="P",
        help="stall once every P seconds (with --stall-for)",
    )
    parser.add_argument(
        "--stall-for", type=float, metavar="S", help="stop answering for the last S s of every P s"
    )
    args = parser.parse_args(argv)
    stall = None
    if (args.stall_every is None) != (args.stall_for is None):
        parser.error("--stall-every and --stall-for go together")
    if args.stall_every is not None:
        if not 0 < args.stall_for < args.stall_every:
            parser.error("--stall-for must be more than 0 and less than --stall-every")
        stall = Stall(args.stall_every, args.stall_for)
    target = Target(args.host, args.port, stall)

    def announce(t: Target) -> None:
        print(f"lcore target listening on {t.url}", flush=True)

    try:
        target.run(on_ready=announce)
    except OSError as e:
        print(f"lcore target: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
