"""Header fields and cookies for lcore's HTTP client: a case-insensitive header mapping that
keeps the case first given, and a per-session cookie jar with domain, path and expiry rules."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from email.utils import parsedate_to_datetime

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

    def copy(self, on_change: Callable[[], None] | None = None) -> CaseInsensitiveDict:
        """A copy sharing this one's (immutable) field tuples: cheap enough for every user."""
        new = CaseInsensitiveDict(on_change=on_change)
        new._store = dict(self._store)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.lower_items()) == {str(k).lower(): v for k, v in other.items()}

    def __repr__(self) -> str:
        return repr(dict(self.items()))


def parse_head_fields(head: bytes) -> list[tuple[str, str]]:
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
