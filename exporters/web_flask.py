"""A locustfile's Flask app (``environment.web_ui.app``) served by the master's aiohttp server.

Locustfiles written for Locust extend its Flask web UI: routes, blueprints, ``after_request``
hooks, a login of their own with Flask-Login. lcore's server keeps its own routes (they win
on a clash) and hands every other path to that app through a minimal WSGI bridge:

- the app's views are locustfile code, so they never run on the master's asyncio loop: each
  request runs on a greenlet of the runtime's ``calls`` (``LocustfileCalls.call``) and the
  loop awaits the answer; a handler that sleeps parks its greenlet, never ``/healthz``;
- a request body is bounded by the server's ``client_max_size``; a streamed response is
  collected; a handler that takes longer than ``web_ui.request_timeout`` is answered 504 and
  its greenlet killed;
- the app sees the URL path as under Locust (its own blueprint is mounted at the base path,
  a locustfile's are where it puts them); a path that only matches below the base path is
  given to the app with the base path as ``SCRIPT_NAME``, so unprefixed routes work there too;
- ``after_request`` hooks on the app also see lcore's own responses (Locust's examples extend
  ``/stats/requests`` that way);
- with ``--web-login`` and a login the locustfile set up (``login_manager.user_loader``),
  Flask-Login's session decides who may use lcore's routes, and ``/login`` is the app's page.

Nothing here imports Flask: the app exists only where a locustfile made it, with Flask.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
import secrets
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

import gevent
from aiohttp import web
from multidict import CIMultiDict

__all__ = ["FLASK_ROUTE", "FlaskBridge", "app_templates", "bridge_for", "login_page"]

log = logging.getLogger(__name__)

FLASK_ROUTE = "lcore-flask"
"""The name of the catch-all route that hands a request to the app."""

# what aiohttp sets itself; a WSGI app's values would contradict the body it sends
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class FlaskBridge:
    """Serves one ``WebUI``'s Flask app from aiohttp handlers."""

    def __init__(self, web_ui: Any, calls: Any, base_path: str = "") -> None:
        self.web_ui = web_ui
        self.calls = calls  # LocustfileCalls: where the app's code runs
        self.base_path = base_path
        self.own_paths: dict[str, frozenset[str]] = {}  # lcore's path -> its methods
        self._keyed = False

    @property
    def app(self) -> Any:
        return self.web_ui.app_if_made

    @property
    def login_in_charge(self) -> bool:
        return bool(self.web_ui.login_in_charge)

    def note_own_routes(self, app: web.Application) -> None:
        """Remember lcore's plain paths, so a wrong method on one is still 405, not the app's."""
        for resource in app.router.resources():
            if isinstance(resource, web.PlainResource):
                methods = frozenset(route.method for route in resource)
                self.own_paths[resource.canonical] = methods

    # -- aiohttp handlers --

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The catch-all route: the app's answer, or 404 when there is no app."""
        app = self.app
        relative = _below(request.path, self.base_path)
        methods = self.own_paths.get(relative) if relative is not None else None
        if methods is not None and request.method not in methods:
            raise web.HTTPMethodNotAllowed(request.method, sorted(methods))
        if app is None:
            raise web.HTTPNotFound()
        environ = await self._environ(request)
        if relative is not None and self.base_path and not _matches(app, environ):
            below = dict(environ, SCRIPT_NAME=_wsgi_path(self.base_path), PATH_INFO=_wsgi_path(relative))
            if _matches(app, below):
                environ = below
        answer = await self._run(request, _call_app, app, environ)
        if isinstance(answer, web.StreamResponse):
            return answer
        status, headers, body = answer
        return _response(status, headers, body)

    async def logged_in(self, request: web.Request) -> bool:
        """Whether Flask-Login's session (or request loader) knows this request's user."""
        app = self.app
        if app is None or not self.login_in_charge:
            return False
        environ = await self._environ(request, with_body=False)
        answer = await self._run(request, _is_authenticated, app, environ)
        return answer is True

    async def after_request(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """The app's ``after_request`` hooks applied to one of lcore's own responses."""
        app = self.app
        if app is None or not app.after_request_funcs.get(None):
            return response
        if not isinstance(response, web.Response) or response.body is None:
            return response  # a file or a stream: passed as it is
        body = response.body
        if not isinstance(body, bytes | bytearray):
            return response
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
        environ = await self._environ(request, with_body=False)
        answer = await self._run(
            request, _process_response, app, environ, response.status, headers, bytes(body)
        )
        if isinstance(answer, web.StreamResponse):
            return answer
        status, new_headers, new_body = answer
        return _response(status, new_headers, new_body)

    # -- running the app's code on a greenlet --

    async def _run(self, request: web.Request, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a greenlet, bounded by the web UI's request timeout; a 504 or 500
        response instead of the value when it hangs or raises."""
        self._ensure_secret_key()
        started: list[Any] = []

        def on_greenlet() -> Any:
            started.append(gevent.getcurrent())
            return fn(*args)

        timeout = float(self.web_ui.request_timeout)
        try:
            return await asyncio.wait_for(self.calls.call(on_greenlet), timeout)
        except asyncio.TimeoutError:
            for greenlet in started:
                greenlet.kill(block=False)
            log.error(
                "The locustfile's web handler for %s %s took more than %g s: answered 504",
                request.method,
                request.path,
                timeout,
            )
            return web.json_response(
                {"success": False, "message": f"The handler took more than {timeout:g} s"},
                status=504,
            )
        except Exception:
            log.exception("The locustfile's web handler for %s %s failed", request.method, request.path)
            return web.json_response({"success": False, "message": "Internal Server Error"}, status=500)

    def _ensure_secret_key(self) -> None:
        """A session needs a key; a locustfile that sets none (``os.getenv`` of an unset
        variable, as Locust's example) gets a random one for this master's lifetime."""
        app = self.app
        if self._keyed or app is None:
            return
        self._keyed = True
        if not app.secret_key:
            app.secret_key = secrets.token_hex(32)
            log.debug("The web UI's Flask app has no SECRET_KEY: using a random one")

    async def _environ(self, request: web.Request, with_body: bool = True) -> dict[str, Any]:
        # body_exists, not can_read_body: the guard has read (and cached) the body already
        body = await request.read() if with_body and request.body_exists else b""
        return wsgi_environ(request, body)


def bridge_for(runtime: Any, base_path: str) -> FlaskBridge | None:
    """A bridge for the runtime's web UI, or None when the master has none (tests' fakes)."""
    from lcore.web_ui import WebUI

    web_ui = getattr(getattr(runtime, "environment", None), "web_ui", None)
    calls = getattr(runtime, "calls", None)
    if not isinstance(web_ui, WebUI) or calls is None:
        return None
    return FlaskBridge(web_ui, calls, base_path)


# -- WSGI ------------------------------------------------------------------------------------


def wsgi_environ(request: web.Request, body: bytes) -> dict[str, Any]:
    """PEP 3333's environ for ``request`` (the full URL path; the caller may split it)."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    host, _, port = (request.host or "").rpartition(":")
    if not host or not port.isdigit():
        host, port = request.host or "localhost", "443" if request.secure else "80"
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": raw_query,  # as sent: aiohttp's query_string is decoded
        "SERVER_NAME": host.strip("[]"),
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": f"HTTP/{request.version.major}.{request.version.minor}",
        "REMOTE_ADDR": request.remote or "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": request.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body or request.method in ("POST", "PUT", "PATCH"):
        environ["CONTENT_LENGTH"] = str(len(body))
    content_type = request.headers.get("Content-Type")
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    for name in set(request.headers.keys()):
        upper = name.upper()
        if upper in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            continue
        values = request.headers.getall(name)
        joined = "; ".join(values) if upper == "COOKIE" else ", ".join(values)
        environ["HTTP_" + upper.replace("-", "_")] = joined
    return environ


def _wsgi_path(path: str) -> str:
    return path.encode("utf-8").decode("latin-1")


def _below(path: str, base: str) -> str | None:
    """``path`` relative to the base path, or None when it is not below it."""
    if not base:
        return path
    if path == base:
        return "/"
    if path.startswith(base + "/"):
        return path[len(base) :]
    return None


def _matches(app: Any, environ: dict[str, Any]) -> bool:
    """Whether the app has a rule for this path (any method: the app answers 405 itself)."""
    from werkzeug.exceptions import NotFound

    try:
        app.url_map.bind_to_environ(environ).match()
    except NotFound:
        return False
    except Exception:  # MethodNotAllowed, RequestRedirect (a missing slash): the app's
        return True
    return True


def _call_app(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the WSGI app to the end (on a greenlet): status line, headers, collected body."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return written.append

    result: Iterable[bytes] = app(environ, start_response)
    try:
        for chunk in result:
            written.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response")
    status, headers = started
    return status, list(headers), b"".join(written)


def _is_authenticated(app: Any, environ: dict[str, Any]) -> bool:
    from flask_login import current_user

    with app.request_context(environ):
        return bool(current_user.is_authenticated)


def _process_response(
    app: Any, environ: dict[str, Any], status: int, headers: list[tuple[str, str]], body: bytes
) -> tuple[str, list[tuple[str, str]], bytes]:
    with app.request_context(environ):
        response = app.response_class(body, status=status, headers=headers)
        response = app.process_response(response)
        return response.status, list(response.headers.items()), response.get_data()


def _response(status: str, headers: list[tuple[str, str]], body: bytes) -> web.Response:
    code, _, reason = status.partition(" ")
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        if name.lower() not in _HOP_BY_HOP:
            out.add(name, value)
    return web.Response(status=int(code), reason=reason or None, body=body, headers=out)


# -- the app's own templates, and the login page a locustfile's login (auth_args) is shown on --


def app_templates(base_path: str) -> dict[str, str]:
    """``index.html``: lcore's page, for views that render Locust's (``render_template(
    "index.html", template_args=...)``); its links resolve from the base path wherever the
    view is. Locust's extra tabs in ``template_args`` are not shown."""
    from pathlib import Path

    base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
    page = (Path(__file__).resolve().parent / "static" / "index.html").read_text()
    base = f'<base href="{html.escape(base_path)}/">'
    # a Jinja template that is the page as it is
    page = page.replace("<head>", "<head>\n  " + base, 1)
    return {"index.html": "{% raw %}" + page + "{% endraw %}"}



def login_page(auth_args: dict[str, Any], base_path: str) -> str:
    """Locust's ``auth_args`` as a page: a username/password form posting to
    ``username_password_callback``, or the ``custom_form``'s inputs posting to its
    ``callback_url``, links to the ``auth_providers``, and the ``error`` / ``info`` message."""
    esc = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(str(auth_args.get('title') or 'lcore'))}: log in</title>"
        f'<link rel="stylesheet" href="{esc(base_path)}/static/style.css"></head>'
        '<body class="login"><div class="card">'
        f"<h1>{esc(str(auth_args.get('title') or 'lcore'))}</h1>"
    ]
    if auth_args.get("error"):
        parts.append(f'<p class="error">{esc(str(auth_args["error"]))}</p>')
    if auth_args.get("info"):
        parts.append(f'<p class="info">{esc(str(auth_args["info"]))}</p>')
    custom = auth_args.get("custom_form")
    if custom:
        parts.append(f'<form method="post" action="{esc(str(custom.get("callback_url", "")))}">')
        parts.extend(_input(field) for field in custom.get("inputs") or [])
        button = custom.get("submit_button_text") or "Log in"
        parts.append(f'<button type="submit">{esc(str(button))}</button></form>')
    elif auth_args.get("username_password_callback"):
        parts.append(
            f'<form method="post" action="{esc(str(auth_args["username_password_callback"]))}">'
            '<label>Username <input name="username" autocomplete="username" required></label>'
            '<label>Password <input name="password" type="password" '
            'autocomplete="current-password"></label><button type="submit">Log in</button></form>'
        )
    for provider in auth_args.get("auth_providers") or []:
        label = esc(str(provider.get("label") or provider.get("callback_url", "")))
        parts.append(f'<p><a href="{esc(str(provider.get("callback_url", "")))}">Log in with {label}</a></p>')
    parts.append("</div></body></html>")
    return "".join(parts)


def _input(field: dict[str, Any]) -> str:
    esc = html.escape
    name = esc(str(field.get("name", "")))
    label = esc(str(field.get("label") or field.get("name", "")))
    choices = field.get("choices")
    if choices:
        multiple = " multiple" if field.get("is_multiple") else ""
        options = "".join(f'<option value="{esc(str(c))}">{esc(str(c))}</option>' for c in choices)
        return f'<label>{label} <select name="{name}"{multiple}>{options}</select></label>'
    default = field.get("default_value")
    if isinstance(default, bool):
        checked = " checked" if default else ""
        return f'<label><input type="checkbox" name="{name}"{checked}> {label}</label>'
    kind = "password" if field.get("is_secret") else "text"
    value = f' value="{esc(str(default))}"' if default not in (None, "") else ""
    required = " required" if field.get("is_required") else ""
    return f'<label>{label} <input name="{name}" type="{kind}"{value}{required}></label>'
