"""The status page's authentication: ``--web-auth`` basic credentials, a ``--web-token``
bearer token, and the sessions the ``--web-login`` form makes (expiring, bounded in number)."""

from __future__ import annotations

import base64
import binascii
import errno
import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web

SESSION_COOKIE = "lcore_session"
SESSION_LIFETIME = 8 * 3600.0
"""Seconds a login (``--web-login``) lasts; then the form asks again. ``POST /logout`` ends it
sooner."""
MAX_SESSIONS = 1000
"""Sessions kept at once; a login beyond them ends the oldest."""


class Auth:
    """Basic credentials, a bearer token, and sessions made by the login form."""

    def __init__(
        self,
        basic: str | None,
        token: str | None,
        login_form: bool,
        external_login: bool = False,
        *,
        session_lifetime: float = SESSION_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user = self.password = None
        if basic:
            user, sep, password = basic.partition(":")
            if not sep or not user:
                raise OSError(errno.EINVAL, "--web-auth must be USER:PASSWORD")
            self.user, self.password = user, password
        self.token = token or None
        # a login the locustfile set up (Flask-Login, web_flask.py) checks users itself
        self.external_login = external_login
        if login_form and self.user is None and not external_login:
            raise OSError(
                errno.EINVAL,
                "--web-login needs --web-auth USER:PASSWORD to check, or a login set up by the "
                "locustfile (environment.web_ui.login_manager)",
            )
        self.login_form = login_form
        self.session_lifetime = session_lifetime
        self._clock = clock
        self._sessions: dict[str, float] = {}  # session -> when it expires (oldest first)

    @property
    def enabled(self) -> bool:
        return self.user is not None or self.token is not None or self.external_login

    def credentials_match(self, user: str, password: str) -> bool:
        if self.user is None or self.password is None:
            return False
        # both compared, always: the time taken says nothing about which one differs
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        return ok_user and ok_password

    def allows(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(value.strip().encode(), self.token.encode())
        if scheme == "basic" and self.user is not None:
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, _, password = decoded.partition(":")
            return self.credentials_match(user, password)
        session = request.cookies.get(SESSION_COOKIE)
        return session is not None and self.session_valid(session)

    def session_valid(self, session: str) -> bool:
        expires = self._sessions.get(session)
        if expires is None:
            return False
        if self._clock() >= expires:
            del self._sessions[session]
            return False
        return True

    def new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        now = self._clock()
        sessions = self._sessions
        for old in [s for s, expires in sessions.items() if expires <= now]:
            del sessions[old]
        while len(sessions) >= MAX_SESSIONS:
            del sessions[next(iter(sessions))]
        sessions[session] = now + self.session_lifetime
        return session

    def end_session(self, session: str | None) -> None:
        if session is not None:
            self._sessions.pop(session, None)

    def challenge(self, request: web.Request, base: str) -> web.StreamResponse:
        if (
            self.login_form
            and request.method == "GET"
            and "text/html" in request.headers.get("Accept", "")
        ):
            raise web.HTTPFound(base + "/login")
        realm = 'Basic realm="lcore"' if self.user is not None else 'Bearer realm="lcore"'
        return web.json_response(
            {"success": False, "message": "Authentication required"},
            status=401,
            headers={"WWW-Authenticate": realm},
        )
