"""What a request returns: ``Response`` (read in full, parsed lazily), the
``ResponseContextManager`` of ``catch_response=True``, and ``response.request``."""

from __future__ import annotations

import json as jsonlib
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from requests import exceptions as rex

from ..exception import CatchResponseError, LocustError, ResponseError
from .fields import CaseInsensitiveDict, parse_head_fields
from .wire import REDIRECT_STATUSES, perf_counter

if TYPE_CHECKING:
    from .session import HttpSession


class HTTPError(ResponseError, rex.HTTPError):
    """A response with an error status (4xx or 5xx); also requests' HTTPError, so
    ``except requests.exceptions.RequestException`` catches it as with Locust's HttpUser."""

    def __repr__(self) -> str:  # Exception's, not OSError's: the failure's name stays the same
        return f"{type(self).__name__}({', '.join(map(repr, self.args))})"

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else str(self.args)


class TooManyRedirects(ResponseError, rex.TooManyRedirects):
    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.args))})"

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else str(self.args)


def status_error(code: int, reason: str, url: str) -> HTTPError:
    kind = "Client" if code < 500 else "Server"
    return HTTPError(f"{code} {kind} Error: {reason} for url: {url}")


def _reason_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


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
        "_payload",
        "_stream",
    )

    def __init__(
        self,
        status_code: int,
        origin: str,
        path: str,
        head: bytes,
        raw: bytes | bytearray,
        payload: bytes,
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
        self._payload = payload  # what was sent, parsed only if .request is read
        self._t0 = 0.0
        self._stream: Any = None

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
            for name, value in parse_head_fields(self._head):
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
    def content(self) -> bytes | None:
        """The body, decoded from gzip/deflate; None if no answer came (a connection error),
        as in Locust."""
        content = self._content
        if content is None:
            if not self._head:
                return None
            # A large body is kept in the bytearray it was read into until someone asks.
            content = bytes(self._raw) if isinstance(self._raw, bytearray) else self._raw
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
        return jsonlib.loads(self.content or b"", **kwargs)

    @property
    def stream(self) -> Any:
        """A file object over the body, for code written for ``stream=True``."""
        if self._stream is None:
            import io

            self._stream = io.BytesIO(self.content or b"")
        return self._stream

    def success(self) -> None:
        raise LocustError(_NOT_CATCHING)

    def failure(self, exc: Any = None) -> None:
        raise LocustError(_NOT_CATCHING)

    @property
    def ok(self) -> bool:
        return 0 < self.status_code < 400

    def raise_for_status(self) -> None:
        error = self.error
        if error is None and self.status_code >= 400:
            error = status_error(self.status_code, self.reason, self.url)
        if error is not None:
            if isinstance(error, HTTPError) and error.response is None:
                error.response = self  # type: ignore[assignment]  # e.response.status_code, as requests'
            raise error

    @property
    def elapsed(self) -> timedelta:
        return timedelta(milliseconds=self.response_time)

    # requests' streaming interface, over the body already read (``stream=True`` reads it too)
    def iter_content(self, chunk_size: int | None = 1, decode_unicode: bool = False) -> Iterator[Any]:
        data: Any = self.text if decode_unicode else (self.content or b"")
        if not chunk_size:
            if data:
                yield data
            return
        for i in range(0, len(data), chunk_size):
            yield data[i : i + chunk_size]

    def iter_lines(
        self, chunk_size: int = 512, decode_unicode: bool = False, delimiter: Any = None
    ) -> Iterator[Any]:
        data: Any = self.text if decode_unicode else (self.content or b"")
        yield from (data.split(delimiter) if delimiter is not None else data.splitlines())

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECT_STATUSES and "location" in self.headers

    def close(self) -> None:
        """Nothing to release: the body was read and the connection went back to the pool."""

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, value: BaseException | None, tb: Any
    ) -> bool | None:
        return None

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response set (name to value)."""
        cookies = {}
        for name, value in parse_head_fields(self._head):
            if name.lower() == "set-cookie":
                key, sep, val = value.split(";", 1)[0].partition("=")
                if sep:
                    cookies[key.strip()] = val.strip()
        return cookies

    @property
    def request(self) -> SentRequest:
        """The request as it was sent (method, url, path_url, headers, body), as in requests."""
        return SentRequest(self._payload, self.url)

    @property
    def start_time(self) -> float:
        """Wall-clock time the request started (derived from the monotonic measurement)."""
        return time.time() - (perf_counter() - self._t0)

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


_TEXT_BODIES = ("application/json", "application/x-www-form-urlencoded")


class SentRequest:
    """``response.request``: read from the bytes that went on the wire."""

    __slots__ = ("method", "url", "path_url", "headers", "body")

    def __init__(self, payload: bytes, url: str) -> None:
        head, _, body = payload.partition(b"\r\n\r\n")
        line = head.partition(b"\r\n")[0]
        parts = line.decode("latin-1").split(" ")
        self.method = parts[0] if parts[0] else ""
        target = parts[1] if len(parts) > 1 else url
        if "://" in target:  # the absolute form a proxy is sent
            split = urlsplit(target)
            target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        self.path_url = target
        self.url = url
        self.headers = CaseInsensitiveDict(dict(parse_head_fields(head)))
        self.body: str | bytes | None = body or None
        kind = self.headers.get("content-type", "")
        if body and kind.startswith(_TEXT_BODIES):
            # JSON and forms as a str, as Locust's clients give them (json= and data={...})
            try:
                self.body = body.decode()
            except UnicodeDecodeError:
                pass

    def __repr__(self) -> str:
        return f"<SentRequest [{self.method}]>"


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


_NOT_CATCHING = (
    "If you want to change the state of the request, you must pass catch_response=True. See "
    "http://docs.locust.io/en/stable/writing-a-locustfile.html#validating-responses"
)

_OUTSIDE_WITH_BLOCK = (
    "Tried to set status on a request that has not yet been made. Make sure you use a "
    "with-block, like this: with self.client.request(..., catch_response=True) as response: "
    "response.success()"
)


class ResponseContextManager(Response):
    """What ``catch_response=True`` returns: a Response whose outcome the with-block decides.
    The request is recorded when the block exits."""

    __slots__ = ("_manual_result", "_entered", "_reported")

    def __init__(self, response: Response) -> None:
        for slot in Response.__slots__:
            object.__setattr__(self, slot, getattr(response, slot))
        # success(): True, failure(): its error, neither: None
        self._manual_result: Literal[True] | BaseException | None = None
        self._entered = False
        self._reported = False

    def __enter__(self) -> ResponseContextManager:
        self._entered = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, value: Any, tb: Any) -> bool:
        session = self._session
        life = session._lifecycle if session is not None else None
        if life is not None:
            life.leave_request()
        manual = self._manual_result
        if manual is not None:
            self._report(None if manual is True else manual)
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

    def raise_for_status(self) -> None:
        """As Locust's: the with-block's verdict wins — ``failure()``'s error is raised,
        ``success()`` raises nothing — else the response's own status decides."""
        manual = self._manual_result
        if manual is None:
            super().raise_for_status()
        elif manual is not True:
            raise manual

    def success(self) -> None:
        """Record this request as a success, whatever its status."""
        if not self._entered:
            raise LocustError(_OUTSIDE_WITH_BLOCK)
        self._manual_result = True

    def failure(self, exc: BaseException | str | None = None) -> None:
        """Record this request as a failure; a string becomes a CatchResponseError."""
        if not self._entered:
            raise LocustError(_OUTSIDE_WITH_BLOCK)
        if exc is None:  # the default only matches Response.failure's, which takes none
            raise TypeError("failure() needs the reason: an exception or a message")
        if not isinstance(exc, BaseException):
            exc = CatchResponseError(exc)
        self._manual_result = exc
