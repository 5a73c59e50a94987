"""What the status server refuses before any handler runs: state changes asked by another
site's page (CSRF), and, without authentication, a Host the server was not bound for (DNS
rebinding). Pure functions of the request's headers; web.py's middleware calls them.

CSRF: a browser tells where a request comes from (``Sec-Fetch-Site``, ``Origin``,
``Referer``); scripts (curl, requests) send none of these and are never refused. Locust's
state-changing GETs (``/stop``, ``/stats/reset``) are kept for scripts, so they count as
state changes here, as every non-GET does.

DNS rebinding: an attacker's name resolving to 127.0.0.1 reaches the server with that name in
``Host``. An IP literal in ``Host`` cannot come from rebinding (the browser sends the name it
resolved), so IP addresses are accepted, as are ``localhost``, the machine's hostname, the
bind address and the names given with ``--web-allowed-hosts`` (``*``: any, ``.example.com``:
that domain and its subdomains).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

__all__ = [
    "STATE_CHANGING_GETS",
    "AllowedHosts",
    "LoginThrottle",
    "cross_site",
    "parse_allowed_hosts",
]

STATE_CHANGING_GETS = frozenset({"/stop", "/stats/reset"})
"""Locust's GET routes that change the test: refused from another site's page."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def changes_state(method: str, path: str) -> bool:
    return method not in _SAFE_METHODS or path in STATE_CHANGING_GETS


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None]:
    """``name[:port]`` lower-cased, the scheme's default port filled in."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return netloc.lower(), None
    return (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _same_place(url: str, host: str, scheme: str) -> bool:
    """Does ``url`` (an Origin or a Referer) name the server ``host`` (the Host header)?"""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.netloc:  # "null": a sandboxed frame, a file:// page
        return False
    return _host_port(parts.netloc, parts.scheme) == _host_port(host, scheme)


def cross_site(headers: Mapping[str, str], host: str, scheme: str) -> str | None:
    """Why a browser request comes from another site's page, or None when it does not.

    ``same-site`` (another port or subdomain of the same site) is foreign too, unless the
    Origin or Referer names this very server.
    """
    fetch_site = headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    origin = headers.get("Origin")
    if origin is not None:
        return None if _same_place(origin, host, scheme) else f"Origin {origin}"
    referer = headers.get("Referer")
    if referer:
        return None if _same_place(referer, host, scheme) else "a foreign Referer"
    if fetch_site == "same-site":
        return "Sec-Fetch-Site: same-site"
    return None  # a script, or a page of this server, or the user typing the address


def parse_allowed_hosts(value: str | None) -> list[str]:
    """``--web-allowed-hosts a,b``: the names, lower-cased; empty parts dropped."""
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class AllowedHosts:
    """The Host values the server answers without authentication."""

    def __init__(self, bind_host: str, extra: Iterable[str] = ()) -> None:
        names = {"localhost"}
        hostname = socket.gethostname().lower()
        if hostname:
            names.update({hostname, hostname.split(".")[0]})
        if bind_host:
            names.add(bind_host.lower().strip("[]"))
        self.any = False
        self.suffixes: list[str] = []
        for name in extra:
            if name == "*":
                self.any = True
            elif name.startswith("."):
                self.suffixes.append(name)
            else:
                names.add(name)
        self.names = frozenset(names)

    def allows(self, host_header: str | None) -> bool:
        if self.any or host_header is None:  # no Host at all: HTTP/1.0, never a browser
            return True
        name, _ = _host_port(host_header, "http")
        if not name:
            return False
        name = name.rstrip(".")
        if _is_ip(name) or name in self.names or name.endswith(".localhost"):
            return True
        return any(name == s[1:] or name.endswith(s) for s in self.suffixes)


class LoginThrottle:
    """Failed logins (the form, basic credentials, a bearer token) counted per client address:
    after ``limit`` failures within ``window`` seconds the address is refused for ``penalty``
    seconds, so a password cannot be guessed at the server's speed."""

    MAX_ADDRESSES = 10_000  # beyond this many, the oldest entries are forgotten

    def __init__(
        self,
        limit: int = 5,
        window: float = 60.0,
        penalty: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.penalty, self.clock = limit, window, penalty, clock
        self._failures: dict[str, list[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before trying again (0: it may try now)."""
        until = self._blocked_until.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._blocked_until[address]
            return 0.0
        return left

    def failed(self, address: str) -> None:
        now = self.clock()
        recent = [t for t in self._failures.pop(address, []) if now - t < self.window]
        recent.append(now)
        if len(recent) >= self.limit:
            self._blocked_until[address] = now + self.penalty
            recent = []
        self._failures[address] = recent  # re-inserted: the dict stays oldest first
        while len(self._failures) > self.MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]
        while len(self._blocked_until) > self.MAX_ADDRESSES:
            del self._blocked_until[next(iter(self._blocked_until))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
