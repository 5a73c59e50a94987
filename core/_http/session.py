"""``HttpSession``: a user's requests, from the call to the recorded Response (the hot path:
see ``lcore.http`` for what it does and where it differs from Locust on purpose)."""

from __future__ import annotations

import errno
import itertools
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from http.client import RemoteDisconnected
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

from requests.exceptions import RequestException

from .._version import __version__
from ..event import RequestEventHook
from ..exception import LocustError, ResponseError, StopUser
from ..user_lifecycle import UserLifecycle, lifecycle_of
from .body import basic_auth, encode_body, encode_params
from .errors import request_error, url_error
from .fields import CaseInsensitiveDict, CookieJar, parse_head_fields
from .response import (
    Response,
    ResponseContextManager,
    TooManyRedirects,
    status_error,
)
from .wire import (
    BODY_METHODS,
    DEFAULT_PORTS,
    IDEMPOTENT,
    REDIRECT_STATUSES,
    TRANSPORT_ERRORS,
    Origin,
    close_quietly,
    exchange,
    perf_counter,
)

# -- the session -----------------------------------------------------------------------


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
    """(scheme, host, port, path prefix, credentials) of a base URL; parsed once, not per user.
    Raises requests' MissingSchema, InvalidSchema or InvalidURL, as requests would."""
    parts = urlsplit(value)
    if "://" not in value:
        raise url_error(value, "schema")
    if parts.scheme not in DEFAULT_PORTS:
        raise url_error(value, "scheme")
    try:
        if not parts.hostname or not parts.hostname.encode("idna"):
            raise url_error(value, "url")
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except (UnicodeError, ValueError) as e:
        raise url_error(value, "url") from e
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return parts.scheme, parts.hostname, parts.port, parts.path.rstrip("/"), auth


# Header versions are unique across sessions: an origin shared by several sessions (a shared
# pool) caches one session's header block, and another session's version never matches it.
_HEADER_VERSIONS = itertools.count(1)

# Origins of the sessions whose users share a pool object (HttpUser.pool_manager /
# FastHttpUser.client_pool), keyed by that object.
_SHARED_ORIGINS: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, int], Origin]] = (
    weakref.WeakKeyDictionary()
)


def _shared_origins(pool: Any) -> dict[tuple[str, str, int], Origin]:
    try:
        return _SHARED_ORIGINS.setdefault(pool, {})
    except TypeError:  # not weak-referenceable: keep it on the pool object itself
        origins = getattr(pool, "_lcore_origins", None)
        if origins is None:
            origins = {}
            pool._lcore_origins = origins
        return origins


def _pool_size(pool: Any, default: int) -> int:
    """The connections per host a shared pool object allows: urllib3's PoolManager keeps it in
    ``connection_pool_kw["maxsize"]``, geventhttpclient's HTTPClientPool in
    ``client_args["concurrency"]``."""
    for attr, key in (("connection_pool_kw", "maxsize"), ("client_args", "concurrency")):
        value = (getattr(pool, attr, None) or {}).get(key)
        if isinstance(value, int) and value > 0:
            return value
    return default


_DEFAULT_HEADERS = CaseInsensitiveDict(
    {"User-Agent": f"lcore/{__version__}", "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
)


class HttpSession:
    """A user's HTTP client: Locust's HttpSession/FastHttpSession API with one keep-alive
    pool per host, a cookie jar, and every request recorded through ``request_event``."""

    # how a request without name= is named: Locust's HttpSession uses the path it sent,
    # its FastHttpSession the URL as given (FastHttpSession below)
    names_by_url = False

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
        shared_pool: Any = None,
        **options: Any,
    ) -> None:
        # Locust's keyword names for a pool several sessions share
        for name in ("pool_manager", "client_pool"):
            if shared_pool is None:
                shared_pool = options.pop(name, None)
        if default_headers is None and isinstance(options.get("headers"), Mapping):
            default_headers = options.pop("headers")  # FastHttpSession's name
        if (proxy_host is None) != (proxy_port is None):
            raise LocustError("A proxy needs both proxy_host and proxy_port")
        self._proxy = None if proxy_host is None else (str(proxy_host), int(proxy_port or 0))
        self.request_event = request_event
        self._lifecycle: UserLifecycle | None = None
        self.user = user
        self.connection_timeout = connection_timeout
        self.network_timeout = network_timeout
        self.max_redirects = max_redirects
        self.concurrency = concurrency
        self.insecure = insecure
        self._ssl_context_factory = ssl_context_factory
        self._ssl_context: Any = None
        # Locust options lcore has no use for (max_retries ...).
        self.unused_options = options
        self.cookies = CookieJar()
        self.auth: tuple[str, str] | None = None
        self.request_name: str | None = None
        self._headers_version = next(_HEADER_VERSIONS)
        self._headers = _DEFAULT_HEADERS.copy(on_change=self._headers_changed)
        if default_headers:
            self._headers.update(default_headers)
        self.shared_pool = shared_pool
        self._origins: dict[tuple[str, str, int], Origin] = (
            {} if shared_pool is None else _shared_origins(shared_pool)
        )
        if shared_pool is not None:
            self.concurrency = _pool_size(shared_pool, concurrency)
        self._base: Origin | None = None
        self._prefix = ""
        self.base_url = base_url

    # -- configuration -------------------------------------------------------------

    @property
    def user(self) -> Any:
        """The User this session belongs to (None for a session of its own)."""
        return self._user

    @user.setter
    def user(self, user: Any) -> None:
        self._user = user
        # what request() reads and writes on every call: stop refused, inside a request
        self._lifecycle = lifecycle_of(user)

    @property
    def base_url(self) -> str | None:
        return self._base_url

    @base_url.setter
    def base_url(self, value: str | None) -> None:
        self._base_url = value
        self._base_error: Exception | None = None
        if not value:
            self._base, self._prefix = None, ""
            return
        try:
            scheme, hostname, port, prefix, auth = _parse_base_url(value)
        except RequestException as e:
            # raised by each request, as requests does (a locustfile bug, not a failure)
            self._base, self._prefix, self._base_error = None, "", e
            return
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
        self._headers_version = next(_HEADER_VERSIONS)

    def _origin(self, scheme: str, host: str, port: int | None) -> Origin:
        scheme = scheme.lower()
        host = host.lower()
        port = port or DEFAULT_PORTS[scheme]
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = Origin(
                scheme,
                host,
                port,
                self.concurrency,
                self.connection_timeout,
                self.network_timeout,
                self._tls_context if scheme == "https" else None,
                self._proxy,
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

    def _block(self, origin: Origin) -> str:
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
        ``stream=True`` records, as Locust's fast client does, the time until the answer's
        head and the size its Content-Length announces, and gives ``response.stream`` (a
        file object over the body). Unlike Locust, the body has been read when the call
        returns (so ``iter_lines`` yields once the answer is complete).
        ``verify``, ``cert`` and ``proxies`` are accepted for requests-style locustfiles and
        ignored: a proxy is the session's (``proxy_host``/``proxy_port``)."""
        life = self._lifecycle
        if life is not None and life.requests_refused:
            raise StopUser()  # the user is told to make no new request (life.check_request)
        method = method.upper()
        if name is None:
            name = self.request_name or None  # else from the URL, below

        if url[:1] == "/" or not url.startswith(("http://", "https://")):
            origin = self._base
            if origin is None:
                if self._base_error is not None:
                    # a fresh one each time: re-raising one object would grow its traceback
                    raise type(self._base_error)(*self._base_error.args)
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
            encoded = encode_params(params)
            if encoded:
                path = f"{path}&{encoded}" if "?" in path else f"{path}?{encoded}"
        path = _safe_path(path)
        if name is None:
            # Locust's HttpSession names a request by the path it sends (the host's base path,
            # params= and all); its FastHttpSession by the URL as it was given
            name = url if self.names_by_url else path

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
            if method in BODY_METHODS:
                block += "Content-Length: 0\r\n"
            payload = f"{method} {origin.target_prefix}{path} HTTP/1.1\r\n{block}\r\n".encode(
                "latin-1"
            )
            body_for_redirect: bytes | None = None
        else:
            body_for_redirect, content_type = encode_body(data, json, files)
            payload = self._build(
                method, origin, path, headers, body_for_redirect, content_type, cookies, auth
            )

        connect_timeout, read_timeout = (None, None) if timeout is None else _split_timeout(timeout)
        gate = self._rate_gate()
        if gate is not None:
            gate.wait()  # --max-rps: this request's slot (a stop may end the wait)
        if life is not None:
            # the engine does not kill a user inside a request: it finishes and is recorded
            life.enter_request()
        head_times: list[float] | None = [] if stream else None
        t0 = perf_counter()
        response = self._send(
            origin, method, path, payload, connect_timeout, read_timeout, t0, head_times
        )
        if allow_redirects and response.status_code in REDIRECT_STATUSES:
            response = self._follow(
                response, method, body_for_redirect, headers, cookies, auth, timeout, head_times
            )
        response.response_time = (perf_counter() - t0) * 1000.0
        if head_times:
            # as Locust's stream=True: the time until the final answer's head, not its body
            response.response_time = (head_times[-1] - t0) * 1000.0
        if stream:
            # Locust's fast client does not read the body then: the size is what was announced
            length = response.headers.get("content-length") if response.status_code else None
            response.response_length = int(length) if length and length.isdigit() else 0
        response.request_type = method
        response.name = name
        response._t0 = t0
        response._context = context
        response._session = self
        if response.error is None and response.status_code >= 400:
            response.error = status_error(response.status_code, response.reason, name)
        if catch_response:
            # still "in a request" until the with-block has decided and recorded it
            return ResponseContextManager(response)
        if life is not None:
            life.leave_request()  # before recording: a listener may raise StopUser
        self._record(response, response.error)
        return response

    def _rate_gate(self) -> Any:
        """--max-rps on a worker: the gate its requests wait at (lcore.rate_cap), or None."""
        return getattr(getattr(self.user, "environment", None), "rate_gate", None)

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
        origin: Origin,
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
            fields["authorization"] = ("Authorization", basic_auth(auth))
        cookie = self.cookies.header_for(origin.host, path, origin.secure) if self.cookies else ""
        if cookies:
            extra = "; ".join(f"{k}={v}" for k, v in cookies.items())
            cookie = f"{cookie}; {extra}" if cookie else extra
        if cookie:
            fields["cookie"] = ("Cookie", cookie)
        if headers:
            for name, given in headers.items():
                if given is None:
                    fields.pop(name.lower(), None)
                else:
                    fields[name.lower()] = (name, str(given))
        if body is not None or method in BODY_METHODS:
            fields["content-length"] = ("Content-Length", str(len(body) if body else 0))
            fields.pop("transfer-encoding", None)
        lines = [f"{method} {origin.target_prefix}{path} HTTP/1.1\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in fields.values())
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        return head + body if body else head

    def _send(
        self,
        origin: Origin,
        method: str,
        path: str,
        payload: bytes,
        connect_timeout: float | None,
        read_timeout: float | None,
        t0: float,
        head_times: list[float] | None = None,
    ) -> Response:
        head_only = method == "HEAD"
        if origin.secure and not hasattr(origin.ssl_context, "wrap_socket"):
            # the session's TLS context, built at its first HTTPS request: a bad
            # ssl_context_factory raises here, out of the request, as in Locust
            origin.ssl_context = origin.ssl_context()
        try:
            sock, reused = origin.acquire(t0, connect_timeout, method not in IDEMPOTENT)
        except TRANSPORT_ERRORS as e:
            return _failed(origin, path, payload, e, connecting=True)
        while True:
            try:
                if read_timeout is not None:
                    sock.settimeout(read_timeout)
                code, head, body, keep = exchange(sock, payload, head_only, head_times)
            except TRANSPORT_ERRORS as e:
                if reused and method in IDEMPOTENT and _is_stale(e):
                    # The server closed the kept connection as we sent: once more, on a
                    # fresh connection that takes over the old one's slot.
                    close_quietly(sock)
                    try:
                        sock, reused = origin.connect(connect_timeout), False
                    except TRANSPORT_ERRORS as e2:
                        origin.open -= 1
                        origin._wake()
                        return _failed(origin, path, payload, e2, connecting=True)
                    except BaseException:
                        origin.open -= 1
                        origin._wake()
                        raise
                    continue
                origin.discard(sock)
                return _failed(origin, path, payload, e)
            except BaseException:
                origin.discard(sock)
                raise
            break
        if keep:
            if read_timeout is not None:
                sock.settimeout(origin.network_timeout)
            origin.release(sock, perf_counter())
        else:
            origin.discard(sock)
        response = Response(code, origin.url, path, head, body, payload)
        response.response_length = len(body)
        # Two byte scans instead of lowering the head: most answers set no cookie.
        if b"ookie:" in head or b"OOKIE:" in head:
            self._store_cookies(origin, path, head)
        return response

    def _store_cookies(self, origin: Origin, path: str, head: bytes) -> None:
        for name, value in parse_head_fields(head):
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
        head_times: list[float] | None = None,
    ) -> Response:
        history: list[Response] = []
        connect_timeout, read_timeout = _split_timeout(timeout)
        first_host = urlsplit(response.url).hostname
        while response.status_code in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                break
            if len(history) >= self.max_redirects:
                response.error = TooManyRedirects(f"Exceeded {self.max_redirects} redirects")
                break
            history.append(response)
            target = urlsplit(urljoin(response.url, location.strip()))
            if target.scheme not in DEFAULT_PORTS or not target.hostname:
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
            gate = self._rate_gate()
            if gate is not None:
                gate.wait()  # each hop is a request the target counts
            response = self._send(
                origin,
                method,
                path,
                payload,
                connect_timeout,
                read_timeout,
                perf_counter(),
                head_times,
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

    def iter_lines(self, url: str, method: str = "GET", **kwargs: Any) -> Iterator[str]:
        """The body of a (streamed) request, line by line without the newlines, as Locust's
        ``FastHttpSession.iter_lines``; raises the request's error, if any, first."""
        response = self.request(method, url, stream=True, **kwargs)
        response.raise_for_status()
        lines = (response.content or b"").decode("utf-8", errors="replace").split("\n")
        if lines[-1] == "":
            lines.pop()  # the newline that ends the last line
        yield from lines


def _is_stale(error: BaseException) -> bool:
    if isinstance(error, RemoteDisconnected) and "without response" in str(error):
        return True
    return isinstance(error, OSError) and error.errno in (errno.ECONNRESET, errno.EPIPE)


def _failed(
    origin: Origin, path: str, payload: bytes, error: BaseException, connecting: bool = False
) -> Response:
    response = Response(0, origin.url, path, b"", b"", payload)
    response.error = request_error(error, connecting)
    return response


class FastHttpSession(HttpSession):
    """Locust's FastHttpSession: the same client; a request without ``name=`` is named by the
    URL as it was given (an absolute URL keeps its host, ``params=`` are not in the name)."""

    names_by_url = True
