"""The master's HTTP server (aiohttp, on the master's event loop): status page, JSON API,
``/metrics``, ``/healthz``, CSV and HTML downloads, and Locust's web API paths.

    GET  /                  the status page (static/index.html, app.js, style.css)
    GET  /api/stats         everything the page shows (a superset of Locust's /stats/requests)
    GET  /api/history       the per-second samples behind the charts (``?since=EPOCH``)
    GET  /api/workers       the workers, lost ones included
    GET  /logs              the master's and the workers' recent log lines (``?since=SEQ``);
                            also /api/logs
    POST /api/swarm         start, or change the user count (form or JSON, Locust's /swarm
                            fields: user_count, spawn_rate, host, run_time, the locustfile's
                            options by dest, and with --class-picker user_classes (repeated)
                            and shape_class); POST /api/stop, POST /api/reset
    GET  /api/start-form    what the start form shows (web_form.describe)
    GET  /metrics           Prometheus exposition (exporters/prometheus.py)
    GET  /healthz           200 and the state, never behind authentication
    POST /logout            ends a --web-login session (the cookie goes), then the login form
    GET  /api/runs...       the History view: stored runs, trends, two runs compared
                            (web_history.py)
    Locust's paths:         POST /swarm, POST (or GET) /stop and /stats/reset, GET /stats/requests,
                            GET /exceptions,
                            GET /stats/requests/csv, /stats/failures/csv, /exceptions/csv,
                            /stats/report (the HTML report; ``?download=1`` to save it)

Authentication (optional): ``--web-auth USER:PASSWORD`` (HTTP basic; with ``--web-login`` a
login form and a session cookie instead of the browser's prompt; a session lasts
``SESSION_LIFETIME``, 8 h, and ``POST /logout`` ends it) and/or ``--web-token TOKEN``
(``Authorization: Bearer TOKEN``); with ``--web-login`` and a Flask-Login login set up by the
locustfile, that login instead (web_flask.py). ``--headless`` makes the page read-only:
control calls answer 403.

Refused before any handler (web_guard.py): state changes asked by another site's page (CSRF,
Locust's GET /stop and /stats/reset included), and without authentication a Host the server
was not bound for (DNS rebinding; ``--web-allowed-hosts`` adds names; /healthz answers any
Host); failed logins are throttled per address. Slow and many connections (web_limits.py): a
request head and a body must arrive in time, connections are capped below the open-file
limit, the oldest idle one giving way, so /healthz keeps answering.

Every other path goes to the locustfile's Flask app (``environment.web_ui.app``), when it made
one: ``web_flask.py`` runs its views on greenlets, behind the same authentication.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import MultiDict

from lcore.log import LogCapture
from lcore.runners import (
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
)

from . import web_flask, web_form, web_guard, web_limits
from .prometheus import DEFAULT_BUCKETS, MAX_SERIES, make_collectors, parse_buckets
from .prometheus_render import MetricsRenderer
from .results_db import store_location
from .web_auth import SESSION_COOKIE, Auth
from .web_documents import MAX_ROWS, history_sample, logs_document, stats_document, worker_rows
from .web_history import HistoryRoutes

__all__ = ["HISTORY_INTERVAL", "HISTORY_LIMIT", "StatusServer", "history_sample", "start_web"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
HISTORY_INTERVAL = 1.0
"""Seconds between two samples of the charts' history."""
HISTORY_LIMIT = 3600
"""Samples kept (an hour at one a second); older ones are dropped."""
_OPEN_PATHS = frozenset({"/healthz", "/login", "/logout", "/static/style.css"})
_UNHOOKED_PATHS = frozenset({"/healthz", "/metrics"})
_ACTIVE = (STATE_SPAWNING, STATE_RUNNING, STATE_STOPPING)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Unavailable(Exception):
    """A download whose generator is missing from this build."""


# -- the server ------------------------------------------------------------------------------


class StatusServer:
    """The aiohttp application around one ``MasterRuntime``; ``start`` binds, ``close`` stops."""

    def __init__(
        self,
        runtime: Any,
        *,
        host: str = "",
        port: int = 8089,
        readonly: bool = False,
        auth: Auth | None = None,
        base_path: str = "",
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
        ssl_context: ssl.SSLContext | None = None,
        history_interval: float = HISTORY_INTERVAL,
        options: Any = None,
        allowed_hosts: list[str] | None = None,
        max_connections: int = web_limits.DEFAULT_MAX_CONNECTIONS,
        head_timeout: float = web_limits.HEAD_TIMEOUT,
        body_timeout: float = web_limits.BODY_TIMEOUT,
        throttle: web_guard.LoginThrottle | None = None,
        metrics_max_series: int = MAX_SERIES,
    ) -> None:
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.throttle = throttle or web_guard.LoginThrottle()
        self.head_timeout = head_timeout
        self._listener: asyncio.Server | None = None
        self._cap: web_limits.ConnectionCap | None = None
        self._accept_filter: web_limits.AcceptErrorFilter | None = None
        self.runtime = runtime
        self.allowed_hosts = web_guard.AllowedHosts(host, allowed_hosts or ())
        self.host = host
        self.port = port
        self.readonly = readonly
        self.auth = auth or Auth(None, None, False)
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        # /metrics: snapshot on the loop, built and encoded in a thread (prometheus_render.py)
        collector, process = make_collectors(
            runtime, buckets=buckets, max_series=metrics_max_series
        )
        self.metrics = MetricsRenderer(collector, [process])
        self.ssl_context = ssl_context
        self.history_interval = history_interval
        self.options = options
        self._runner: web.AppRunner | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._history_epoch = 0
        self._history_seen: object = None
        self._log_capture: LogCapture | None = None
        # the start form: --class-picker, the locustfile's options, a run time set on the page
        self.class_picker = bool(getattr(options, "class_picker", False))
        self._pickable = list(runtime.environment.user_classes)
        self._custom: dict[str, Any] = getattr(runtime, "options_for_workers", {})
        # the locustfile's Flask app (environment.web_ui.app), served beside lcore's routes
        self.flask = web_flask.bridge_for(runtime, self.base_path)
        self._run_timer: asyncio.TimerHandle | None = None
        self._stop_at: float | None = None
        if hasattr(runtime, "on_state_change"):
            runtime.on_state_change.append(self._state_changed)
        self.history_routes = HistoryRoutes(store_location(options) if options is not None else None)

    # -- lifecycle --

    async def start(self) -> StatusServer:
        """Bind and serve; raises ``OSError`` when the address cannot be used."""
        app = self._app()
        if self.base_path:
            root = web.Application()
            root.add_subapp(self.base_path, app)
            app = root
        # a page's poll in flight must not hold the master's exit for long; a request head
        # that has not arrived after HEAD_TIMEOUT closes its connection (web_limits.py)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
            keepalive_timeout=self.head_timeout,
        )
        await runner.setup()
        assert runner.server is not None
        self._cap = web_limits.ConnectionCap(
            runner.server, web_limits.connection_cap_for(self.max_connections)
        )
        loop = asyncio.get_running_loop()
        try:
            self._listener = await loop.create_server(
                self._cap,
                self.host or None,
                self.port,
                ssl=self.ssl_context,
                backlog=128,
                reuse_address=True,
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = self._listener.sockets
        if sockets:  # the port actually bound, for --web-port 0
            self.port = sockets[0].getsockname()[1]
        self._accept_filter = web_limits.AcceptErrorFilter(loop.get_exception_handler())
        loop.set_exception_handler(self._accept_filter)
        self._sampler = asyncio.get_running_loop().create_task(self._sample_history())
        logs = getattr(self.runtime, "logs", None)
        if logs is not None:  # the master's own lines, beside the workers', in the Logs view
            self._log_capture = LogCapture(logs)
            logging.getLogger().addHandler(self._log_capture)
        scheme = "https" if self.ssl_context else "http"
        shown = self.host or "0.0.0.0"
        if ":" in shown:
            shown = f"[{shown}]"
        log.info(
            "Starting web interface at %s://%s:%d%s/", scheme, shown, self.port, self.base_path
        )
        return self

    async def close(self) -> None:
        self._cancel_run_timer()
        self.history_routes.close()
        if self._log_capture is not None:
            logging.getLogger().removeHandler(self._log_capture)
            self._log_capture = None
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._accept_filter is not None:
            loop = asyncio.get_running_loop()
            if loop.get_exception_handler() is self._accept_filter:
                loop.set_exception_handler(self._accept_filter.previous)
            self._accept_filter = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = self.host or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}{self.base_path}/"

    async def _sample_history(self) -> None:
        while True:
            await asyncio.sleep(self.history_interval)
            try:
                self._take_sample()
            except Exception:
                log.exception("Could not sample the stats history")

    def _take_sample(self) -> None:
        runtime = self.runtime
        history = runtime.stats_merged.history
        if runtime.state not in _ACTIVE:
            # one more point once stopped, so the charts end where the test ended
            if not history or history[-1].get("state") not in _ACTIVE:
                return
        sample = history_sample(runtime)
        sample["state"] = runtime.state
        history.append(sample)
        if len(history) > HISTORY_LIMIT:
            del history[: len(history) - HISTORY_LIMIT]

    # -- the application --

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        get, post = app.router.add_get, app.router.add_post
        get("/", self._index)
        get("/login", self._login_page)
        post("/login", self._login)
        post("/logout", self._logout)
        get("/static/{file}", self._static)
        get("/healthz", self._healthz)
        get("/metrics", self._metrics)
        get("/api/stats", self._stats)
        get("/api/history", self._history)
        get("/api/workers", self._workers)
        get("/api/logs", self._logs)
        get("/api/start-form", self._start_form)
        get("/logs", self._logs)
        post("/api/swarm", self._swarm)
        post("/api/stop", self._stop)
        post("/api/reset", self._reset)
        # Locust's web API, as scripts call it
        post("/swarm", self._swarm)
        # Locust 2.x answers these on POST; the GETs of older Locust stay for scripts (both
        # refused from another site's page, web_guard.py)
        post("/stop", self._stop)
        get("/stop", self._stop)
        post("/stats/reset", self._reset)
        get("/stats/reset", self._reset)
        get("/stats/requests", self._stats)
        get("/exceptions", self._exceptions)
        get("/stats/requests/csv", self._csv_download("stats", "requests"))
        get("/stats/failures/csv", self._csv_download("failures", "failures"))
        get("/exceptions/csv", self._csv_download("exceptions", "exceptions"))
        get("/stats/requests_full_history/csv", self._full_history)
        get("/stats/report", self._report)
        self.history_routes.add_to(app)
        if self.flask is not None:  # every other path: the locustfile's Flask app, if any
            self.flask.note_own_routes(app)
            app.router.add_route("*", "/{tail:.*}", self.flask.handle, name=web_flask.FLASK_ROUTE)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path[len(self.base_path) :] or "/"
        flask = self.flask
        to_flask = flask is not None and request.match_info.route.name == web_flask.FLASK_ROUTE
        # a locustfile's own login decides for its own routes (its login_submit is open)
        open_path = path in _OPEN_PATHS or (to_flask and self.auth.external_login)
        if not self.auth.enabled and path != "/healthz":
            # DNS rebinding: another name resolving here must not drive an open server
            if not self.allowed_hosts.allows(request.headers.get("Host")):
                return _refuse(
                    403,
                    f"Host {request.headers.get('Host')!r} is not one this server answers "
                    "without authentication: add it with --web-allowed-hosts",
                )
        if self.auth.enabled and not open_path:
            address = request.remote or ""
            tried = "Authorization" in request.headers  # a credential to check, maybe guessed
            if tried and (wait := self.throttle.retry_after(address)):
                return _too_many_failures(wait)
            if not self.auth.allows(request):
                if not (flask is not None and await flask.logged_in(request)):
                    if tried:
                        self.throttle.failed(address)
                    return self.auth.challenge(request, self.base_path)
            elif tried:
                self.throttle.succeeded(address)
        if web_guard.changes_state(request.method, path):
            foreign = web_guard.cross_site(request.headers, request.host, request.scheme)
            if foreign is not None:  # CSRF: another site's page (an <img>, a form) asked
                log.warning("Refused %s %s from another site (%s)", request.method, path, foreign)
                return _refuse(403, "Cross-site request refused")
        busy = self._cap.busy if self._cap is not None else set()
        busy.add(request.protocol)  # answering: not the one closed when connections run out
        try:
            await web_limits.read_body(request, self.body_timeout)
            response = await handler(request)
        finally:
            busy.discard(request.protocol)
        if flask is not None and not to_flask and path not in _UNHOOKED_PATHS:
            # the app's after_request hooks see lcore's responses too, as Locust's routes are
            # the app's (probes and scrapes never wait on locustfile code)
            response = await flask.after_request(request, response)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    # -- pages --

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in {"app.js", "style.css"}:
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
        path = STATIC / name
        response = web.Response(
            body=path.read_bytes(), content_type=types[path.suffix], charset="utf-8"
        )
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'"
        )
        return response

    async def _login_page(self, request: web.Request, error: str = "") -> web.StreamResponse:
        if self.flask is not None and self.flask.login_in_charge:
            return await self.flask.handle(request)  # the locustfile's login page
        if not self.auth.login_form:
            raise web.HTTPFound(self.base_path + "/")
        message = f'<p class="error">{error}</p>' if error else ""
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lcore: log in'
            '</title><link rel="stylesheet" href="static/style.css"></head><body class="login">'
            '<form method="post" action="login" class="card"><h1>lcore</h1>'
            f'{message}<label>User <input name="username" autocomplete="username" required>'
            '</label><label>Password <input name="password" type="password" '
            'autocomplete="current-password"></label><button type="submit">Log in</button>'
            "</form></body></html>"
        )
        return web.Response(text=html, content_type="text/html", status=401 if error else 200)

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if self.flask is not None and self.flask.login_in_charge:
            return await self.flask.handle(request)
        if not self.auth.login_form:
            raise web.HTTPNotFound()
        address = request.remote or ""
        if wait := self.throttle.retry_after(address):
            return _too_many_failures(wait)
        form = await request.post()
        user, password = str(form.get("username", "")), str(form.get("password", ""))
        if not self.auth.credentials_match(user, password):
            log.warning("Failed login on the status page from %s", request.remote)
            self.throttle.failed(address)
            return await self._login_page(request, "Wrong user or password.")
        self.throttle.succeeded(address)
        response = web.HTTPFound(self.base_path + "/")
        response.set_cookie(
            SESSION_COOKIE,
            self.auth.new_session(),
            max_age=math.ceil(self.auth.session_lifetime),
            httponly=True,
            samesite="Strict",
            secure=self.ssl_context is not None,
            path=self.base_path + "/",
        )
        raise response

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        """``POST /logout``: the session ends here and now, then the login form."""
        if self.flask is not None and self.flask.login_in_charge:
            return await self.flask.handle(request)  # the locustfile's own logout, if it has one
        if not self.auth.login_form:
            raise web.HTTPNotFound()
        self.auth.end_session(request.cookies.get(SESSION_COOKIE))
        response = web.HTTPFound(self.base_path + "/login")
        response.del_cookie(SESSION_COOKIE, path=self.base_path + "/")
        raise response

    # -- read-only API --

    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        runtime = self.runtime
        return web.json_response(
            {
                "status": "ok",
                "state": runtime.state,
                "workers": len(runtime.workers),
                "user_count": runtime.user_count,
            }
        )

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        body, content_type = await self.metrics.render(request.headers.get("Accept", ""))
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        document = stats_document(self.runtime, self.readonly)
        # the page shows its "Log out" button for lcore's own login form (a locustfile's login
        # has its own way out, if any)
        document["logout"] = self.auth.login_form and not self.auth.external_login
        document["stop_at"] = self._stop_at  # a run time set on the page: when the test ends
        return web.json_response(document)

    async def _exceptions(self, request: web.Request) -> web.StreamResponse:
        records = sorted(self.runtime.stats_merged.exceptions.values(), key=lambda r: -r.count)
        rows = [
            {"count": r.count, "msg": r.msg, "traceback": r.traceback, "nodes": ", ".join(r.nodes)}
            for r in records[:MAX_ROWS]
        ]
        return web.json_response({"exceptions": rows})

    async def _workers(self, request: web.Request) -> web.StreamResponse:
        runtime = self.runtime
        return web.json_response(
            {"worker_count": len(runtime.workers), "workers": worker_rows(runtime)}
        )

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _refuse(400, "since must be a whole number (the seq of the last line seen)")
        return web.json_response(logs_document(self.runtime.logs, since))

    async def _history(self, request: web.Request) -> web.StreamResponse:
        history = self.runtime.stats_merged.history
        if history is not self._history_seen:  # a reset started a new list
            self._history_seen = history
            self._history_epoch += 1
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return _refuse(400, "since must be a number (seconds since the epoch)")
        samples = [s for s in history if s["time"] > since] if since else list(history)
        return web.json_response({"epoch": self._history_epoch, "samples": samples})

    # -- control --

    async def _swarm(self, request: web.Request) -> web.StreamResponse:
        if self.readonly:
            return _read_only()
        runtime = self.runtime
        try:
            fields = await _fields(request)
            start = web_form.read(
                fields, runtime, self.options, self._custom, self.class_picker, self._pickable
            )
        except ValueError as e:
            return _refuse(400, str(e))
        if runtime.state == STATE_STOPPING:
            return _refuse(409, "The test is stopping; start it again in a moment")
        shape = start.shape if start.pick else runtime.shape
        if runtime.state in _ACTIVE and shape is not None:
            return _refuse(409, "A shape drives this test: stop it before starting again")
        if start.pick and shape is not runtime.shape and runtime.state in _ACTIVE:
            return _refuse(409, "Stop the test before choosing another shape")
        self._apply_options(start.options)
        self._note_common_options(start)
        if start.pick:
            runtime.pick_user_classes(start.picked_classes)
            runtime.pick_shape(start.shape)
        self._cancel_run_timer()
        answer: dict[str, Any] = {"success": True}
        if shape is not None:
            if start.host:
                runtime.host = start.host
            runtime.start_shape()
            # as Locust: a shape decides when the test ends, the run time is not timed here
            answer["message"] = f"Swarming started using shape class '{type(shape).__name__}'"
        else:
            assert start.user_count is not None and start.spawn_rate is not None
            runtime.start(start.user_count, start.spawn_rate, host=start.host or None)
            log.info(
                "Status page: ramping to %d users at %g per second",
                start.user_count,
                start.spawn_rate,
            )
            answer.update(
                message="Swarming started",
                user_count=start.user_count,
                spawn_rate=start.spawn_rate,
            )
            if start.run_time:
                self._start_run_timer(start.run_time)
                answer["run_time"] = start.run_time
        answer["host"] = runtime.host
        if start.pick:
            answer["user_classes"] = sorted(
                runtime.picked_classes or [c.__name__ for c in self._pickable]
            )
        return web.json_response(answer)

    def _apply_options(self, values: dict[str, Any]) -> None:
        """The locustfile's options from the form: the master's parsed options now, the
        workers' with the next spawn message (and the welcome of a worker joining later)."""
        if not values:
            return
        targets = {
            id(o): o
            for o in (self.options, self.runtime.environment.parsed_options)
            if o is not None
        }
        for dest, value in values.items():
            for target in targets.values():
                setattr(target, dest, value)
            self._custom[dest] = value
        log.info("Status page: options set: %s", ", ".join(sorted(values)))

    def _note_common_options(self, start: web_form.StartRequest) -> None:
        """As Locust's /swarm: the master's parsed options say what the page started (a shape
        with ``use_common_options`` reads users and spawn rate there)."""
        options = self.options
        if options is None:
            return
        for dest, value in (
            ("num_users", start.user_count),
            ("spawn_rate", start.spawn_rate),
            ("run_time", start.run_time),
        ):
            if value is not None:
                setattr(options, dest, value)
        if start.host:
            options.host = start.host
        if start.pick:
            options.user_classes = list(start.picked_classes or [])

    def _start_run_timer(self, seconds: float) -> None:
        self._stop_at = time.time() + seconds
        self._run_timer = asyncio.get_running_loop().call_later(seconds, self._run_time_up)
        log.info("Status page: the test stops by itself in %g s", seconds)

    def _run_time_up(self) -> None:
        self._run_timer = None
        self._stop_at = None
        log.info("Run time limit (set on the status page) reached, stopping test")
        self.runtime.stop()

    def _cancel_run_timer(self) -> None:
        if self._run_timer is not None:
            self._run_timer.cancel()
        self._run_timer = None
        self._stop_at = None

    def _state_changed(self, state: str) -> None:
        if state == STATE_STOPPED:  # stopped otherwise (a shape, --run-time, the last worker)
            self._cancel_run_timer()

    async def _start_form(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            web_form.describe(self.runtime, self.options, self.class_picker, self._pickable)
        )

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        if self.readonly:
            return _read_only()
        self._cancel_run_timer()
        self.runtime.stop()
        return web.json_response({"success": True, "message": "Test stopped"})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        if self.readonly:
            return _read_only()
        self.runtime.reset_stats()
        if request.path.endswith("/stats/reset"):
            return web.Response(text="ok")  # what Locust answers
        return web.json_response({"success": True, "message": "Statistics reset"})

    # -- downloads --

    def _csv_download(self, kind: str, filename: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                text = csv_text(self.runtime.stats_merged, kind)
            except Unavailable as e:
                return _refuse(503, str(e))
            return _attachment(text, f"{filename}_{int(time.time())}.csv", "text/csv")

        return handler

    async def _full_history(self, request: web.Request) -> web.StreamResponse:
        options = self.options
        prefix = getattr(options, "csv_prefix", None)
        path = Path(f"{prefix}_stats_history.csv") if prefix else None
        if not (getattr(options, "stats_history_enabled", False) and path and path.exists()):
            return _refuse(404, "Start lcore with --csv PREFIX --csv-full-history for this file")
        return _attachment(
            path.read_text(), f"requests_full_history_{int(time.time())}.csv", "text/csv"
        )

    async def _report(self, request: web.Request) -> web.StreamResponse:
        from .report_html import render_html_report

        html = render_html_report(self.runtime)
        if request.query.get("download"):
            return _attachment(html, f"report_{int(time.time())}.html", "text/html")
        return web.Response(text=html, content_type="text/html")


def csv_text(stats: Any, kind: str) -> str:
    """One of the CSV reports (``stats``, ``failures``, ``exceptions``) as text.

    Written by ``report_csv.write_csv_files`` into a private temporary directory, so the page
    downloads exactly what ``--csv`` writes.
    """
    from . import report_csv

    with tempfile.TemporaryDirectory(prefix="lcore-csv-") as directory:
        prefix = Path(directory) / "lcore"
        report_csv.write_csv_files(stats, str(prefix))
        path = Path(f"{prefix}_{kind}.csv")
        if not path.exists():
            raise Unavailable(f"The {kind} CSV report is not available in this build")
        return path.read_text()


# -- helpers ---------------------------------------------------------------------------------


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "message": message}, status=status)


def _too_many_failures(wait: float) -> web.Response:
    response = _refuse(429, "Too many failed logins from this address: try again later")
    response.headers["Retry-After"] = str(math.ceil(wait))
    return response


def _read_only() -> web.Response:
    return _refuse(403, "This master runs --headless: the status page is read-only")


def _attachment(text: str, filename: str, content_type: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _fields(request: web.Request) -> web_form.Fields:
    """A form's fields, or a JSON object's (a list value gives the field several times)."""
    fields: web_form.Fields = MultiDict()
    if request.content_type == "application/json":
        try:
            data = await request.json()
        except json.JSONDecodeError:
            raise ValueError("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        for key, value in data.items():
            for item in value if isinstance(value, list) else [value]:
                fields.add(str(key), "" if item is None else str(item))
        return fields
    form = await request.post()
    for key, value in form.items():
        fields.add(key, str(value))
    return fields


def _ssl_context(options: Any) -> ssl.SSLContext | None:
    cert, key = getattr(options, "tls_cert", ""), getattr(options, "tls_key", "")
    if not (cert or key):
        return None
    if not (cert and key):
        raise OSError(errno.EINVAL, "--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def start_web(runtime: Any, options: Any) -> StatusServer:
    """Serve the status page, the API and /metrics for ``runtime`` as ``options`` say.

    Raises ``OSError`` when the server cannot start (address in use, bad TLS files, bad
    authentication settings): the master turns that into a one-line error.
    """
    buckets = DEFAULT_BUCKETS
    if getattr(options, "metrics_buckets", None):
        try:
            buckets = parse_buckets(options.metrics_buckets)
        except ValueError as e:
            raise OSError(errno.EINVAL, f"--metrics-buckets: {e}") from None
    web_limits.raise_open_file_limit()  # as workers do: many clients need many descriptors
    web_ui = getattr(getattr(runtime, "environment", None), "web_ui", None)
    auth = Auth(
        getattr(options, "web_auth", None),
        getattr(options, "web_token", None),
        bool(getattr(options, "web_login", False)),
        external_login=bool(getattr(web_ui, "login_in_charge", False)),
    )
    server = StatusServer(
        runtime,
        host=getattr(options, "web_host", "") or "",
        port=getattr(options, "web_port", 8089),
        readonly=bool(getattr(options, "headless", False)),
        auth=auth,
        base_path=getattr(options, "web_base_path", "") or "",
        buckets=buckets,
        ssl_context=_ssl_context(options),
        options=options,
        allowed_hosts=web_guard.parse_allowed_hosts(getattr(options, "web_allowed_hosts", None)),
        metrics_max_series=getattr(options, "metrics_max_series", None) or MAX_SERIES,
    )
    return await server.start()
