"""The wire side of lcore's HTTP client: one keep-alive pool per (scheme, host, port), and one
request/response exchange on a socket, framed by hand for Content-Length answers (llhttp,
through geventhttpclient's parser, takes over for the rest)."""

from __future__ import annotations

import time
from collections import deque
from http.client import HTTPException, RemoteDisconnected
from typing import Any

import gevent.socket
from gevent.monkey import get_original
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

perf_counter = time.perf_counter
_poll = get_original("select", "poll")
_POLLIN = 0x001

_RECV_SIZE = 65536
_MAX_HEAD = 65536
# A socket idle for longer than this is checked before reuse: the server may have closed it.
_PROBE_AFTER = 0.25
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# What a failed exchange may raise and still be a recorded failure, not a crash of the user.
TRANSPORT_ERRORS = (OSError, HTTPException, ValueError)


# -- connections -----------------------------------------------------------------------


class Origin:
    """One (scheme, host, port) of a session: its keep-alive sockets and its request head."""

    __slots__ = (
        "scheme",
        "host",
        "port",
        "url",
        "secure",
        "idle",
        "open",
        "limit",
        "waiters",
        "block",
        "block_version",
        "connect_timeout",
        "network_timeout",
        "ssl_context",
        "host_header",
        "proxy",
        "target_prefix",
    )

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        limit: int,
        connect_timeout: float,
        network_timeout: float,
        ssl_context: Any,
        proxy: tuple[str, int] | None = None,
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.secure = scheme == "https"
        netloc = f"[{host}]" if ":" in host else host
        if port != DEFAULT_PORTS[scheme]:
            netloc = f"{netloc}:{port}"
        self.host_header = netloc
        self.url = f"{scheme}://{netloc}"
        self.idle: list[tuple[Any, float]] = []
        self.open = 0
        self.limit = max(1, limit)
        # created on first contention: most users never wait for a connection
        self.waiters: deque[Any] | None = None
        self.block = ""
        self.block_version = -1
        self.connect_timeout = connect_timeout
        self.network_timeout = network_timeout
        self.ssl_context = ssl_context
        self.proxy = proxy
        # through a proxy, plain HTTP requests name the whole URL; HTTPS goes through a tunnel
        self.target_prefix = self.url if proxy is not None and not self.secure else ""

    def acquire(
        self, now: float, connect_timeout: float | None, probe: bool = True
    ) -> tuple[Any, bool]:
        """A socket for one exchange, and whether it was used before. ``probe=False`` skips
        the check that a long-idle socket is still open: for idempotent requests, which are
        sent again on a fresh connection if the kept one turns out closed."""
        idle = self.idle
        while idle:
            sock, last = idle.pop()
            if not probe or now - last < _PROBE_AFTER or _still_open(sock):
                return sock, True
            self._close(sock)
        if self.open >= self.limit:
            return self._wait(connect_timeout)
        self.open += 1
        try:
            return self.connect(connect_timeout), False
        except BaseException:
            self.open -= 1
            self._wake()
            raise

    def _wait(self, connect_timeout: float | None) -> tuple[Any, bool]:
        from gevent.event import AsyncResult

        waiter: AsyncResult[Any] = AsyncResult()
        if self.waiters is None:
            self.waiters = deque()
        self.waiters.append(waiter)
        try:
            sock = waiter.get()
        except BaseException:
            if waiter.ready():
                handed = waiter.get()
                if handed is not None:
                    self.release(handed, perf_counter())
                else:
                    self.open -= 1
                    self._wake()
            else:
                self.waiters.remove(waiter)
            raise
        if sock is not None:
            return sock, True
        # A slot was freed rather than a socket handed over: this waiter owns it now.
        try:
            return self.connect(connect_timeout), False
        except BaseException:
            self.open -= 1
            self._wake()
            raise

    def _wake(self) -> None:
        if self.waiters and self.open < self.limit:
            self.open += 1
            self.waiters.popleft().set(None)

    def connect(self, connect_timeout: float | None) -> Any:
        timeout = self.connect_timeout if connect_timeout is None else connect_timeout
        address = self.proxy or (self.host, self.port)
        sock = gevent.socket.create_connection(address, timeout=timeout)
        try:
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            if self.proxy is not None and self.secure:
                _open_tunnel(sock, self.host_header if self.port != 443 else f"{self.host}:443")
            context = self.ssl_context
            if context is not None:
                if not hasattr(context, "wrap_socket"):
                    # built on first connection, so a bad ssl_context_factory fails the
                    # request that needs it (as in Locust), not the user's creation
                    context = self.ssl_context = context()
                sock = context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.network_timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def release(self, sock: Any, now: float) -> None:
        if self.waiters:
            self.waiters.popleft().set(sock)
        else:
            self.idle.append((sock, now))

    def discard(self, sock: Any) -> None:
        self._close(sock)
        self._wake()

    def _close(self, sock: Any) -> None:
        self.open -= 1
        close_quietly(sock)

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for sock, _ in idle:
            self._close(sock)


def _open_tunnel(sock: Any, authority: str) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``authority`` (host:port); raise if refused."""
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("latin-1"))
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk or len(answer) > 65536:
            raise ConnectionError(f"The proxy closed the connection instead of a tunnel to {authority}")
        answer += chunk
    status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = status.split(" ", 2)
    if len(parts) < 2 or not parts[1].startswith("2"):
        raise ConnectionError(f"The proxy refused a tunnel to {authority}: {status}")


def close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _still_open(sock: Any) -> bool:
    """An idle keep-alive socket that has become readable was closed (or spoiled) by the peer."""
    try:
        poller = _poll()
        poller.register(sock.fileno(), _POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


class _Parser(HTTPResponseParser):
    """llhttp (via geventhttpclient) for the answers the fast path leaves alone. Header
    fields are read from the raw head later, so their callbacks do nothing."""

    __slots__ = ("skip_body", "done", "parts")

    def __init__(self, skip_body: bool) -> None:
        self.skip_body = skip_body
        self.done = False
        self.parts: list[bytes] = []

    def _on_message_begin(self) -> None:
        pass

    def _on_status(self, _value: str) -> None:
        pass

    def _on_header_field(self, _value: str) -> None:
        pass

    def _on_header_value(self, _value: str) -> None:
        pass

    def _on_headers_complete(self) -> bool:
        return self.skip_body

    def _on_body(self, data: bytearray) -> None:
        self.parts.append(data)  # type: ignore[arg-type]

    def _on_message_complete(self) -> None:
        if self.get_code() >= 200:
            self.done = True


def _read_with_parser(sock: Any, data: bytes, head_only: bool) -> tuple[bytes, bool]:
    """Frames the body of the answer that starts ``data``: (body, connection reusable)."""
    parser = _Parser(head_only)
    parser.feed(data)
    while not parser.done:
        more = sock.recv(_RECV_SIZE)
        parser.feed(more)  # an empty feed tells llhttp the peer closed: ends a length-less body
        if not more and not parser.done:
            raise RemoteDisconnected("Remote end closed connection before the response ended")
    body = b"".join(parser.parts)
    return body, bool(parser.should_keep_alive())


def exchange(
    sock: Any, payload: bytes, head_only: bool, head_times: list[float] | None = None
) -> tuple[int, bytes, bytes | bytearray, bool]:
    """Sends one request and reads its answer: (status, head, body, connection reusable).
    With ``head_times``, the moment the final head had arrived is appended to it (what
    ``stream=True`` reports as the response time)."""
    # one send() nearly always takes a whole request; gevent's sendall() costs several
    # wrapper layers and a getsockopt on every call
    sent = sock.send(payload)
    if sent < len(payload):
        sock.sendall(memoryview(payload)[sent:])
    data = sock.recv(_RECV_SIZE)
    while True:
        if not data:
            raise RemoteDisconnected("Remote end closed connection without response")
        end = data.find(b"\r\n\r\n")
        while end < 0:
            if len(data) > _MAX_HEAD:
                raise HTTPParseError("response head too large")
            more = sock.recv(_RECV_SIZE)
            if not more:
                raise RemoteDisconnected("Remote end closed connection in the response head")
            data += more
            end = data.find(b"\r\n\r\n", max(0, len(data) - len(more) - 3))
        if data[:9] != b"HTTP/1.1 ":
            # HTTP/1.0 or something odd: llhttp decides framing and keep-alive.
            head = data[:end]
            code = _status_code(head)
            if code < 200:
                data = data[end + 4 :] or sock.recv(_RECV_SIZE)
                continue
            if head_times is not None:
                head_times.append(perf_counter())
            body, keep = _read_with_parser(sock, data, head_only)
            return code, head, body, keep
        code = int(data[9:12])
        if code < 200 and code != 101:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            data = data[end + 4 :] or sock.recv(_RECV_SIZE)
            continue
        break
    if head_times is not None:
        head_times.append(perf_counter())
    head = data[:end]
    low = head.lower()
    keep = True
    i = low.find(b"\nconnection:")
    if i >= 0:
        j = low.find(b"\n", i + 12)
        keep = b"close" not in (low[i + 12 : j] if j >= 0 else low[i + 12 :])
    if head_only or code == 204 or code == 304 or code == 101:
        if len(data) > end + 4:
            keep = False  # bytes after a bodyless answer: the stream is out of step
        return code, head, b"", keep
    i = low.find(b"\ncontent-length:")
    if i < 0 or b"\ntransfer-encoding:" in low:
        body, keep = _read_with_parser(sock, data, head_only)
        return code, head, body, keep
    j = low.find(b"\n", i + 16)
    length = int(low[i + 16 : j] if j >= 0 else low[i + 16 :])
    start = end + 4
    have = len(data) - start
    if have == length:
        return code, head, data[start:], keep
    if have > length:
        return code, head, data[start : start + length], False
    # The rest goes straight into a buffer of the announced size: no over-read, no joins.
    into = bytearray(length)
    view = memoryview(into)
    view[:have] = data[start:]
    recv_into = sock.recv_into
    while have < length:
        received = recv_into(view[have:])
        if not received:
            raise RemoteDisconnected(
                f"Remote end closed connection after {have} of {length} body bytes"
            )
        have += received
    return code, head, into, keep


def _status_code(head: bytes) -> int:
    try:
        return int(head[9:12])
    except ValueError:
        raise HTTPParseError(f"malformed status line: {head[:40]!r}")
