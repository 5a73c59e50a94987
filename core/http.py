"""The HTTP client a user calls as ``self.client``: Locust's HttpSession API on gevent sockets.

This is the hot path of the whole tool, so the common request is lean: the request head is
mostly precomputed per session and host, a keep-alive socket is reused, a response with a
Content-Length is framed in a few bytes operations (llhttp, through geventhttpclient's
parser, takes over for chunked, length-less and HTTP/1.0 answers), and headers, text and
content decoding wait until a locustfile asks for them.

Where lcore differs from Locust on purpose:

* ``response_length`` is the body size on the wire (before gzip/deflate decoding), so a
  response is only decompressed if someone reads it.
* An exception raised inside a ``catch_response`` block behaves as in Locust: a
  ``ResponseError`` is recorded as the failure and swallowed; any other exception propagates
  and, unless ``success()``/``failure()`` was called first, nothing is recorded.
"""

from __future__ import annotations

import base64
import errno
import json as jsonlib
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from http import HTTPStatus
from http.client import HTTPException, RemoteDisconnected
from typing import Any
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit

import gevent.socket
from gevent.monkey import get_original
from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

from ._version import __version__
from .event import RequestEventHook
from .exception import CatchResponseError, LocustError, ResponseError, StopUser

__all__ = [
    "CaseInsensitiveDict",
    "CookieJar",
    "FastHttpSession",
    "FastResponse",
    "HTTPError",
    "HttpSession",
    "LocustResponse",
    "Response",
    "ResponseContextManager",
    "TooManyRedirects",
]

_perf_counter = time.perf_counter
_poll = get_original("select", "poll")
_POLLIN = 0x001

_RECV_SIZE = 65536
_MAX_HEAD = 65536
# A socket idle for longer than this is checked before reuse: the server may have closed it.
_PROBE_AFTER = 0.25
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What a failed exchange may raise and still be a recorded failure, not a crash of the user.
_TRANSPORT_ERRORS = (OSError, HTTPException, ValueError)


class HTTPError(ResponseError):
    """A response with an error status (4xx or 5xx)."""


class TooManyRedirects(ResponseError):
    pass


def _status_error(code: int, reason: str, url: str) -> HTTPError:
    kind = "Client" if code < 500 else "Server"
    return HTTPError(f"{code} {kind} Error: {reason} for url: {url}")


def _reason_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


# -- headers and cookies ---------------------------------------------------------------


class CaseInsensitiveDict(MutableMapping[str, str]):
    """Header fields by case-insensitive name; keeps the case they were first set with."""

    __slots__ = ("_store", "_on_change")

    def __init__(
        self,
        data: Mapping[str, str] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        # built directly, not through MutableMapping.update: every user makes one
        self._store: dict[str, tuple[str, str]] = (
            {key.lower(): (key, value) for key, value in data.items()} if data else {}
        )
        self._on_change = on_change

    def __setitem__(self, key: str, value: str) -> None:
        self._store[key.lower()] = (key, value)
        if self._on_change is not None:
            self._on_change()

    def __getitem__(self, key: str) -> str:
        return self._store[key.lower()][1]

    def __delitem__(self, key: str) -> None:
        del self._store[key.lower()]
        if self._on_change is not None:
            self._on_change()

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._store

    def lower_items(self) -> Iterator[tuple[str, str]]:
        return ((lower, pair[1]) for lower, pair in self._store.items())

    def copy(self) -> CaseInsensitiveDict:
        return CaseInsensitiveDict(dict(self.items()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.lower_items()) == {str(k).lower(): v for k, v in other.items()}

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def _parse_head_fields(head: bytes) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line[:1] in (" ", "\t") and fields:
            # Obsolete line folding: the line continues the previous field's value.
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields.append((name.strip(), value.strip()))
    return fields


class CookieJar(MutableMapping[str, str]):
    """A session's cookies. Set-Cookie answers are stored under their host (or Domain) and
    sent back to matching hosts and paths; names set by hand go to every host."""

    __slots__ = ("_jar",)

    def __init__(self) -> None:
        # domain key -> (name, path) -> (value, secure, expires as epoch seconds or None).
        # The key is a host name, "." + a Domain attribute, or "" for every host.
        self._jar: dict[str, dict[tuple[str, str], tuple[str, bool, float | None]]] = {}

    def __bool__(self) -> bool:
        return bool(self._jar)

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        self._jar.setdefault(domain, {})[(name, path)] = (value, False, None)

    def _all(self) -> Iterator[tuple[str, str, str]]:
        for domain, entries in self._jar.items():
            for (name, _path), (value, _, _) in entries.items():
                yield domain, name, value

    def __getitem__(self, name: str) -> str:
        for _, key, value in self._all():
            if key == name:
                return value
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        found = False
        for domain in list(self._jar):
            entries = self._jar[domain]
            for key in [k for k in entries if k[0] == name]:
                del entries[key]
                found = True
            if not entries:
                del self._jar[domain]
        if not found:
            raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for _, name, _ in self._all())

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._jar.values())

    def clear(self) -> None:
        self._jar.clear()

    def get_dict(self, domain: str | None = None) -> dict[str, str]:
        return {name: value for d, name, value in self._all() if domain is None or d == domain}

    def __repr__(self) -> str:
        return f"<CookieJar {self.get_dict()!r}>"

    def header_for(self, host: str, path: str, secure: bool) -> str:
        """The Cookie header value for a request, "" if no cookie matches."""
        now = 0.0
        matched: list[tuple[int, str, str]] = []
        for domain, entries in list(self._jar.items()):
            if not (
                domain == ""
                or domain == host
                or (domain[0] == "." and (host == domain[1:] or host.endswith(domain)))
            ):
                continue
            for (name, cookie_path), (value, only_secure, expires) in list(entries.items()):
                if expires is not None:
                    now = now or time.time()
                    if expires <= now:
                        del entries[(name, cookie_path)]
                        continue
                if only_secure and not secure:
                    continue
                if _path_matches(path, cookie_path):
                    matched.append((len(cookie_path), name, value))
        if not matched:
            return ""
        # RFC 6265: cookies with longer paths first.
        matched.sort(key=lambda item: -item[0])
        return "; ".join(f"{name}={value}" for _, name, value in matched)

    def store(self, host: str, path: str, set_cookie: str) -> None:
        """Stores one Set-Cookie value received from ``host`` for a request to ``path``."""
        parts = set_cookie.split(";")
        name, sep, value = parts[0].partition("=")
        name = name.strip()
        if not sep or not name:
            return
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        domain = host
        # RFC 6265's default path: the request path up to its last slash.
        cookie_path = (path[: path.rfind("/")] or "/") if path.startswith("/") else "/"
        secure = False
        expires: float | None = None
        max_age_seen = False
        for attribute in parts[1:]:
            key, _, attr_value = attribute.partition("=")
            key = key.strip().lower()
            attr_value = attr_value.strip()
            if key == "domain" and attr_value:
                candidate = attr_value.lstrip(".").lower()
                # A server may only set cookies for its own domain or a parent of it.
                if host != candidate and not host.endswith("." + candidate):
                    return
                domain = "." + candidate
            elif key == "path" and attr_value.startswith("/"):
                cookie_path = attr_value
            elif key == "secure":
                secure = True
            elif key == "max-age":
                try:
                    expires = time.time() + int(attr_value)
                    max_age_seen = True
                except ValueError:
                    pass
            elif key == "expires" and not max_age_seen:
                try:
                    expires = parsedate_to_datetime(attr_value).timestamp()
                except (TypeError, ValueError, IndexError, OverflowError):
                    pass
        entries = self._jar.setdefault(domain, {})
        if expires is not None and expires <= time.time():
            entries.pop((name, cookie_path), None)
            if not entries:
                del self._jar[domain]
            return
        entries[(name, cookie_path)] = (value, secure, expires)


def _path_matches(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path or cookie_path == "/":
        return True
    return request_path.startswith(cookie_path) and (
        cookie_path.endswith("/") or request_path[len(cookie_path)] in "/?"
    )


# -- responses -------------------------------------------------------------------------


class Response:
    """An HTTP response, read in full. Headers, text and decoded content are computed on
    first access. A request that failed without an answer has ``status_code`` 0."""

    __slots__ = (
        "status_code",
        "error",
        "history",
        "request_type",
        "name",
        "response_time",
        "response_length",
        "_origin",
        "_path",
        "_head",
        "_raw",
        "_content",
        "_headers",
        "_encoding",
        "_context",
        "_session",
        "_t0",
    )

    def __init__(
        self,
        status_code: int,
        origin: str,
        path: str,
        head: bytes,
        raw: bytes | bytearray,
    ) -> None:
        self.status_code = status_code
        self._origin = origin
        self._path = path
        self._head = head
        self._raw = raw
        self.error: BaseException | None = None
        self.history: list[Response] = []
        self._content: bytes | None = None
        self._headers: CaseInsensitiveDict | None = None
        self._encoding: str | None = None
        self.request_type = ""
        self.name = ""
        self.response_time = 0.0
        self.response_length = 0
        self._context: dict[str, Any] | None = None
        self._session: HttpSession | None = None
        self._t0 = 0.0

    @property
    def url(self) -> str:
        return self._origin + self._path

    @url.setter
    def url(self, value: str) -> None:
        self._origin, self._path = value, ""

    @property
    def headers(self) -> CaseInsensitiveDict:
        headers = self._headers
        if headers is None:
            headers = CaseInsensitiveDict()
            store = headers._store
            for name, value in _parse_head_fields(self._head):
                lower = name.lower()
                if lower in store:
                    value = f"{store[lower][1]}, {value}"
                    name = store[lower][0]
                store[lower] = (name, value)
            self._headers = headers
        return headers

    @property
    def reason(self) -> str:
        line = self._head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ", 2)
        return parts[2] if len(parts) > 2 else _reason_phrase(self.status_code)

    @property
    def content(self) -> bytes:
        content = self._content
        if content is None:
            # A large body is kept in the bytearray it was read into until someone asks.
            content = bytes(self._raw) if type(self._raw) is bytearray else self._raw
            if content and b"content-encoding" in self._head.lower():
                content = _decode_content(content, self.headers.get("content-encoding", ""))
            self._content = content
        return content

    @property
    def encoding(self) -> str | None:
        if self._encoding is None:
            content_type = self.headers.get("content-type", "")
            for param in content_type.split(";")[1:]:
                key, _, value = param.partition("=")
                if key.strip().lower() == "charset":
                    self._encoding = value.strip().strip("\"'") or None
        return self._encoding

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding = value

    @property
    def text(self) -> str:
        content = self.content
        if not content:
            return ""
        encoding = self.encoding or "utf-8"
        try:
            return content.decode(encoding, errors="replace")
        except LookupError:
            return content.decode("utf-8", errors="replace")

    def json(self, **kwargs: Any) -> Any:
        return jsonlib.loads(self.content, **kwargs)

    @property
    def ok(self) -> bool:
        return 0 < self.status_code < 400

    def raise_for_status(self) -> None:
        if self.error is not None:
            raise self.error
        if self.status_code >= 400:
            raise _status_error(self.status_code, self.reason, self.url)

    @property
    def elapsed(self) -> timedelta:
        return timedelta(milliseconds=self.response_time)

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response set (name to value)."""
        cookies = {}
        for name, value in _parse_head_fields(self._head):
            if name.lower() == "set-cookie":
                key, sep, val = value.split(";", 1)[0].partition("=")
                if sep:
                    cookies[key.strip()] = val.strip()
        return cookies

    @property
    def start_time(self) -> float:
        """Wall-clock time the request started (derived from the monotonic measurement)."""
        return time.time() - (_perf_counter() - self._t0)

    @property
    def request_meta(self) -> dict[str, Any]:
        """What the request event is fired with, as Locust's ``response.request_meta``."""
        session = self._session
        context = session._full_context(self._context) if session is not None else {}
        return {
            "request_type": self.request_type,
            "name": self.name,
            "response_time": self.response_time,
            "response_length": self.response_length,
            "response": self,
            "context": context,
            "exception": self.error,
            "start_time": self.start_time,
            "url": self.url,
        }

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


def _decode_content(raw: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(raw, 47)  # 32 + 15: gzip or zlib header, detected
        if encoding == "deflate":
            try:
                return zlib.decompress(raw)
            except zlib.error:
                return zlib.decompress(raw, -15)  # some servers send raw deflate
    except zlib.error:
        pass  # undecodable: hand out the bytes as received
    return raw


_OUTSIDE_WITH_BLOCK = (
    "Tried to set status on a request that has not yet been made. Make sure you use a "
    "with-block, like: with client.get(..., catch_response=True) as response:"
)


class ResponseContextManager(Response):
    """What ``catch_response=True`` returns: a Response whose outcome the with-block decides.
    The request is recorded when the block exits."""

    __slots__ = ("_manual_result", "_entered", "_reported")

    def __init__(self, response: Response) -> None:
        for slot in Response.__slots__:
            object.__setattr__(self, slot, getattr(response, slot))
        self._manual_result: bool | BaseException | None = None
        self._entered = False
        self._reported = False

    def __enter__(self) -> ResponseContextManager:
        self._entered = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, value: Any, tb: Any) -> bool:
        session = self._session
        if session is not None and session.user is not None:
            session.user._in_request = False
        manual = self._manual_result
        if manual is not None:
            self._report(None if manual is True else manual)  # type: ignore[arg-type]
            return exc_type is None
        if exc_type is not None:
            if isinstance(value, ResponseError):
                self._report(value)
                return True
            return False
        self._report(self.error)
        return True

    def _report(self, exception: BaseException | None) -> None:
        if self._reported:
            return
        self._reported = True
        session = self._session
        if session is not None:
            session._record(self, exception)

    def success(self) -> None:
        """Record this request as a success, whatever its status."""
        if not self._entered:
            raise LocustError(_OUTSIDE_WITH_BLOCK)
        self._manual_result = True

    def failure(self, exc: BaseException | str) -> None:
        """Record this request as a failure; a string becomes a CatchResponseError."""
        if not self._entered:
            raise LocustError(_OUTSIDE_WITH_BLOCK)
        if not isinstance(exc, BaseException):
            exc = CatchResponseError(exc)
        self._manual_result = exc


# -- connections -----------------------------------------------------------------------


class _Origin:
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
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.secure = scheme == "https"
        netloc = f"[{host}]" if ":" in host else host
        if port != _DEFAULT_PORTS[scheme]:
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

    def acquire(self, now: float, connect_timeout: float | None) -> tuple[Any, bool]:
        """A socket for one exchange, and whether it was used before."""
        idle = self.idle
        while idle:
            sock, last = idle.pop()
            if now - last < _PROBE_AFTER or _still_open(sock):
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

        waiter: AsyncResult = AsyncResult()
        if self.waiters is None:
            self.waiters = deque()
        self.waiters.append(waiter)
        try:
            sock = waiter.get()
        except BaseException:
            if waiter.ready():
                handed = waiter.get()
                if handed is not None:
                    self.release(handed, _perf_counter())
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
        sock = gevent.socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            sock.setsockopt(gevent.socket.IPPROTO_TCP, gevent.socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=self.host)
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
        _close_quietly(sock)

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for sock, _ in idle:
            self._close(sock)


def _close_quietly(sock: Any) -> None:
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


def _exchange(
    sock: Any, payload: bytes, head_only: bool
) -> tuple[int, bytes, bytes | bytearray, bool]:
    """Sends one request and reads its answer: (status, head, body, connection reusable)."""
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
            body, keep = _read_with_parser(sock, data, head_only)
            return code, head, body, keep
        code = int(data[9:12])
        if code < 200 and code != 101:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            data = data[end + 4 :] or sock.recv(_RECV_SIZE)
            continue
        break
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
    body = bytearray(length)
    view = memoryview(body)
    view[:have] = data[start:]
    recv_into = sock.recv_into
    while have < length:
        received = recv_into(view[have:])
        if not received:
            raise RemoteDisconnected(
                f"Remote end closed connection after {have} of {length} body bytes"
            )
        have += received
    return code, head, body, keep


def _status_code(head: bytes) -> int:
    try:
        return int(head[9:12])
    except ValueError:
        raise HTTPParseError(f"malformed status line: {head[:40]!r}")


# -- the session -----------------------------------------------------------------------


def _basic_auth(auth: tuple[str | bytes, str | bytes]) -> str:
    user, password = (p.encode("latin-1") if isinstance(p, str) else p for p in auth)
    return "Basic " + base64.b64encode(user + b":" + password).decode("ascii")


def _encode_params(params: Any) -> str:
    if isinstance(params, (str, bytes)):
        return params.decode() if isinstance(params, bytes) else params
    return urlencode(params, doseq=True)


def _encode_body(data: Any, json: Any, files: Any) -> tuple[bytes | None, str | None]:
    """The request body and its Content-Type (None: leave it to the caller's headers)."""
    if files:
        return _encode_multipart(data, files)
    if json is not None and data is None:
        return jsonlib.dumps(json).encode(), "application/json"
    if data is None:
        return None, None
    if isinstance(data, bytes):
        return data, None
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data), None
    if hasattr(data, "read"):
        chunk = data.read()
        return (chunk.encode("utf-8") if isinstance(chunk, str) else chunk), None
    if isinstance(data, (Mapping, list, tuple)):
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    # Any other iterable: bytes or str blocks, sent as one body.
    return b"".join(b.encode("utf-8") if isinstance(b, str) else b for b in data), None


def _encode_multipart(data: Any, files: Any) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out: list[bytes] = []
    fields = data.items() if isinstance(data, Mapping) else (data or ())
    for name, value in fields:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        )
        out.append(value.encode() if isinstance(value, str) else bytes(value))
        out.append(b"\r\n")
    items = files.items() if isinstance(files, Mapping) else files
    for name, spec in items:
        content_type = "application/octet-stream"
        if isinstance(spec, (tuple, list)):
            filename, fileobj = spec[0], spec[1]
            if len(spec) > 2 and spec[2]:
                content_type = spec[2]
        else:
            fileobj = spec
            filename = getattr(spec, "name", name)
        content = fileobj.read() if hasattr(fileobj, "read") else fileobj
        if isinstance(content, str):
            content = content.encode()
        filename = str(filename).rsplit("/", 1)[-1]
        out.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
            ).encode()
        )
        out.append(bytes(content))
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _split_timeout(timeout: Any) -> tuple[float | None, float | None]:
    """requests' timeout: one number for both, or (connect, read)."""
    if timeout is None:
        return None, None
    if isinstance(timeout, (tuple, list)):
        return timeout[0], timeout[1]
    return timeout, timeout


def _safe_path(path: str) -> str:
    if path.isascii() and " " not in path:
        return path
    return quote(path, safe="/?&=%:@!$'()*+,;~[]#")


@lru_cache(maxsize=64)
def _parse_base_url(value: str) -> tuple[str, str, int | None, str, tuple[str, str] | None]:
    """(scheme, host, port, path prefix, credentials) of a base URL; parsed once, not per user."""
    parts = urlsplit(value)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise LocustError(f"Invalid host {value!r}: it must be a base URL like http://example.org")
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"), auth


class HttpSession:
    """A user's HTTP client: Locust's HttpSession/FastHttpSession API with one keep-alive
    pool per host, a cookie jar, and every request recorded through ``request_event``."""

    def __init__(
        self,
        base_url: str | None,
        request_event: RequestEventHook,
        user: Any = None,
        *,
        connection_timeout: float = 60.0,
        network_timeout: float = 60.0,
        max_redirects: int = 30,
        concurrency: int = 10,
        insecure: bool = True,
        default_headers: Mapping[str, str] | None = None,
        ssl_context_factory: Callable[[], Any] | None = None,
        proxy_host: str | None = None,
        proxy_port: int | None = None,
        **options: Any,
    ) -> None:
        if proxy_host is not None or proxy_port is not None:
            raise LocustError("lcore's HTTP client does not support proxies")
        self.request_event = request_event
        self.user = user
        self.connection_timeout = connection_timeout
        self.network_timeout = network_timeout
        self.max_redirects = max_redirects
        self.concurrency = concurrency
        self.insecure = insecure
        self._ssl_context_factory = ssl_context_factory
        self._ssl_context: Any = None
        # Locust options lcore has no use for (max_retries, client_pool, pool_manager ...).
        self.unused_options = options
        self.cookies = CookieJar()
        self.auth: tuple[str, str] | None = None
        self.request_name: str | None = None
        self._headers_version = 0
        self.headers = CaseInsensitiveDict(
            {
                "User-Agent": f"lcore/{__version__}",
                "Accept-Encoding": "gzip, deflate",
                "Accept": "*/*",
                **(default_headers or {}),
            },
            on_change=self._headers_changed,
        )
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._base: _Origin | None = None
        self._prefix = ""
        self.base_url = base_url

    # -- configuration -------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._base_url = value
        if not value:
            self._base, self._prefix = None, ""
            return
        scheme, hostname, port, prefix, auth = _parse_base_url(value)
        if auth is not None:
            self.auth = auth
        self._base = self._origin(scheme, hostname, port)
        self._prefix = prefix

    @property
    def headers(self) -> CaseInsensitiveDict:
        return self._headers

    @headers.setter
    def headers(self, value: Mapping[str, str]) -> None:
        self._headers = CaseInsensitiveDict(value, on_change=self._headers_changed)
        self._headers_changed()

    def _headers_changed(self) -> None:
        self._headers_version += 1

    def _origin(self, scheme: str, host: str, port: int | None) -> _Origin:
        scheme = scheme.lower()
        host = host.lower()
        port = port or _DEFAULT_PORTS[scheme]
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = _Origin(
                scheme,
                host,
                port,
                self.concurrency,
                self.connection_timeout,
                self.network_timeout,
                self._tls_context() if scheme == "https" else None,
            )
            self._origins[key] = origin
        return origin

    def _tls_context(self) -> Any:
        if self._ssl_context is None:
            import gevent.ssl

            if self._ssl_context_factory is not None:
                context = self._ssl_context_factory()
            else:
                context = gevent.ssl.create_default_context()
                if self.insecure:
                    context.check_hostname = False
                    context.verify_mode = gevent.ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    def _block(self, origin: _Origin) -> str:
        """The session's header lines for ``origin`` (Host first), rebuilt when they change."""
        if origin.block_version != self._headers_version:
            headers = self._headers
            lines = [f"Host: {headers.get('host') or origin.host_header}\r\n"]
            lines.extend(
                f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "host"
            )
            origin.block = "".join(lines)
            origin.block_version = self._headers_version
        return origin.block

    @contextmanager
    def rename_request(self, name: str) -> Iterator[None]:
        """Groups every request made inside the block under ``name``."""
        previous, self.request_name = self.request_name, name
        try:
            yield
        finally:
            self.request_name = previous

    def close(self) -> None:
        """Closes every idle keep-alive connection."""
        for origin in self._origins.values():
            origin.close()

    # -- requests ------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        name: str | None = None,
        catch_response: bool = False,
        context: dict[str, Any] | None = None,
        *,
        params: Any = None,
        data: Any = None,
        json: Any = None,
        headers: Mapping[str, str | None] | None = None,
        cookies: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        allow_redirects: bool = True,
        files: Any = None,
        stream: bool = False,
        verify: Any = None,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        """Sends a request and records it. Never raises for HTTP or network errors: the
        Response has ``error`` set (and ``status_code`` 0 if nothing was answered).
        ``stream``, ``verify``, ``cert`` and ``proxies`` are accepted for requests-style
        locustfiles and ignored: bodies are always read in full."""
        user = self.user
        if user is not None and getattr(user, "_stop_requests", False):
            raise StopUser()
        method = method.upper()
        if name is None:
            name = self.request_name or url

        if url[:1] == "/" or not url.startswith(("http://", "https://")):
            origin = self._base
            if origin is None:
                raise LocustError(
                    f"No base URL to request {url!r} against: set the host "
                    "(the User's host attribute or --host)"
                )
            path = self._prefix + url if url[:1] == "/" else f"{self._prefix}/{url}"
        else:
            parts = urlsplit(url)
            origin = self._origin(parts.scheme, parts.hostname or "", parts.port)
            path = parts.path or "/"
            if parts.query:
                path = f"{path}?{parts.query}"
        if params:
            encoded = _encode_params(params)
            if encoded:
                path = f"{path}&{encoded}" if "?" in path else f"{path}?{encoded}"
        path = _safe_path(path)

        if (
            data is None
            and json is None
            and headers is None
            and files is None
            and auth is None
            and cookies is None
            and self.auth is None
            and not self.cookies
        ):
            # The common request: nothing but the session's own header lines.
            block = self._block(origin)
            if method in _BODY_METHODS:
                block += "Content-Length: 0\r\n"
            payload = f"{method} {path} HTTP/1.1\r\n{block}\r\n".encode("latin-1")
            body_for_redirect: bytes | None = None
        else:
            body_for_redirect, content_type = _encode_body(data, json, files)
            payload = self._build(
                method, origin, path, headers, body_for_redirect, content_type, cookies, auth
            )

        connect_timeout, read_timeout = (None, None) if timeout is None else _split_timeout(timeout)
        if user is not None:
            # the engine does not kill a user inside a request: it finishes and is recorded
            user._in_request = True
        t0 = _perf_counter()
        response = self._send(origin, method, path, payload, connect_timeout, read_timeout, t0)
        if allow_redirects and response.status_code in _REDIRECT_STATUSES:
            response = self._follow(
                response, method, body_for_redirect, headers, cookies, auth, timeout, t0
            )
        response.response_time = (_perf_counter() - t0) * 1000.0
        response.request_type = method
        response.name = name
        response._t0 = t0
        response._context = context
        response._session = self
        if response.error is None and response.status_code >= 400:
            response.error = _status_error(response.status_code, response.reason, name)
        if catch_response:
            # still "in a request" until the with-block has decided and recorded it
            return ResponseContextManager(response)
        self._record(response, response.error)
        if user is not None:
            user._in_request = False
        return response

    def _record(self, response: Response, exception: BaseException | None) -> None:
        """Listeners get Locust's keyword arguments; with none, the recorder alone is
        called positionally, so no dict is built."""
        hook = self.request_event
        if hook._handlers:
            hook.fire(
                request_type=response.request_type,
                name=response.name,
                response_time=response.response_time,
                response_length=response.response_length,
                response=response,
                context=self._full_context(response._context),
                exception=exception,
                start_time=response.start_time,
                url=response.url,
            )
        elif hook.recorder is not None:
            hook.recorder(
                response.request_type,
                response.name,
                response.response_time,
                response.response_length,
                exception,
            )

    def _full_context(self, context: dict[str, Any] | None) -> dict[str, Any]:
        user_context = getattr(self.user, "context", None)
        if callable(user_context):
            merged = dict(user_context() or {})
            if context:
                merged.update(context)
            return merged
        return dict(context) if context else {}

    def _build(
        self,
        method: str,
        origin: _Origin,
        path: str,
        headers: Mapping[str, str | None] | None,
        body: bytes | None,
        content_type: str | None,
        cookies: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
    ) -> bytes:
        fields: dict[str, tuple[str, str]] = {"host": ("Host", origin.host_header)}
        for name, value in self._headers.items():
            fields[name.lower()] = (name, value)
        if content_type is not None:
            fields["content-type"] = ("Content-Type", content_type)
        auth = auth if auth is not None else self.auth
        if auth is not None:
            fields["authorization"] = ("Authorization", _basic_auth(auth))
        cookie = self.cookies.header_for(origin.host, path, origin.secure) if self.cookies else ""
        if cookies:
            extra = "; ".join(f"{k}={v}" for k, v in cookies.items())
            cookie = f"{cookie}; {extra}" if cookie else extra
        if cookie:
            fields["cookie"] = ("Cookie", cookie)
        if headers:
            for name, value in headers.items():
                if value is None:
                    fields.pop(name.lower(), None)
                else:
                    fields[name.lower()] = (name, str(value))
        if body is not None or method in _BODY_METHODS:
            fields["content-length"] = ("Content-Length", str(len(body) if body else 0))
            fields.pop("transfer-encoding", None)
        lines = [f"{method} {path} HTTP/1.1\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in fields.values())
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        return head + body if body else head

    def _send(
        self,
        origin: _Origin,
        method: str,
        path: str,
        payload: bytes,
        connect_timeout: float | None,
        read_timeout: float | None,
        t0: float,
    ) -> Response:
        head_only = method == "HEAD"
        try:
            sock, reused = origin.acquire(t0, connect_timeout)
        except _TRANSPORT_ERRORS as e:
            return _failed(origin, path, e)
        while True:
            try:
                if read_timeout is not None:
                    sock.settimeout(read_timeout)
                code, head, body, keep = _exchange(sock, payload, head_only)
            except _TRANSPORT_ERRORS as e:
                if reused and method in _IDEMPOTENT and _is_stale(e):
                    # The server closed the kept connection as we sent: once more, on a
                    # fresh connection that takes over the old one's slot.
                    _close_quietly(sock)
                    try:
                        sock, reused = origin.connect(connect_timeout), False
                    except _TRANSPORT_ERRORS as e2:
                        origin.open -= 1
                        origin._wake()
                        return _failed(origin, path, e2)
                    except BaseException:
                        origin.open -= 1
                        origin._wake()
                        raise
                    continue
                origin.discard(sock)
                return _failed(origin, path, e)
            except BaseException:
                origin.discard(sock)
                raise
            break
        if keep:
            if read_timeout is not None:
                sock.settimeout(origin.network_timeout)
            origin.release(sock, _perf_counter())
        else:
            origin.discard(sock)
        response = Response(code, origin.url, path, head, body)
        response.response_length = len(body)
        # Two byte scans instead of lowering the head: most answers set no cookie.
        if b"ookie:" in head or b"OOKIE:" in head:
            self._store_cookies(origin, path, head)
        return response

    def _store_cookies(self, origin: _Origin, path: str, head: bytes) -> None:
        for name, value in _parse_head_fields(head):
            if name.lower() == "set-cookie":
                self.cookies.store(origin.host, path.split("?", 1)[0], value)

    def _follow(
        self,
        response: Response,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str | None] | None,
        cookies: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
        timeout: Any,
        t0: float,
    ) -> Response:
        history: list[Response] = []
        connect_timeout, read_timeout = _split_timeout(timeout)
        first_host = urlsplit(response.url).hostname
        while response.status_code in _REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                break
            if len(history) >= self.max_redirects:
                response.error = TooManyRedirects(f"Exceeded {self.max_redirects} redirects")
                break
            history.append(response)
            target = urlsplit(urljoin(response.url, location.strip()))
            if target.scheme not in _DEFAULT_PORTS or not target.hostname:
                response.error = ResponseError(f"Cannot follow redirect to {location!r}")
                break
            code = response.status_code
            if code == 303 and method != "HEAD" or code in (301, 302) and method == "POST":
                method, body = "GET", None
            origin = self._origin(target.scheme, target.hostname, target.port)
            path = _safe_path((target.path or "/") + (f"?{target.query}" if target.query else ""))
            hop_headers = dict(headers) if headers else {}
            if body is None:
                hop_headers["Content-Type"] = None
            hop_auth = auth
            if target.hostname != first_host:
                # Credentials stay with the host they were meant for.
                hop_headers["Authorization"] = None
                hop_auth = None
            payload = self._build(method, origin, path, hop_headers, body, None, cookies, hop_auth)
            response = self._send(
                origin, method, path, payload, connect_timeout, read_timeout, _perf_counter()
            )
        response.history = history
        return response

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Response:
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Response:
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Response:
        return self.request("OPTIONS", url, **kwargs)


def _is_stale(error: BaseException) -> bool:
    if isinstance(error, RemoteDisconnected) and "without response" in str(error):
        return True
    return isinstance(error, OSError) and error.errno in (errno.ECONNRESET, errno.EPIPE)


def _failed(origin: _Origin, path: str, error: BaseException) -> Response:
    response = Response(0, origin.url, path, b"", b"")
    response.error = error
    return response


# Locust's names for the same things (locust.clients, locust.contrib.fasthttp).
FastHttpSession = HttpSession
FastResponse = Response
LocustResponse = Response
