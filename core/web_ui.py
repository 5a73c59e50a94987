"""``environment.web_ui`` on the master: what a locustfile extends, as it extends Locust's.

Locust's web UI is a Flask app, and locustfiles add routes, blueprints and ``after_request``
hooks to ``environment.web_ui.app`` from ``events.init``, and set up a custom login with
Flask-Login (``login_manager``, ``auth_args``). lcore's status page is aiohttp; this object
holds the Flask app such a locustfile builds, and ``lcore.exporters.web_flask`` serves the
app's routes beside lcore's own, on greenlets.

The Flask app is made the first time it is asked for (``app``, ``login_manager``), so a run
whose locustfile never extends the page does not import Flask. Without Flask installed the
object still exists (and is true, as Locust's is on a master), and asking for the app says
what to install. Only the master has one; on workers ``environment.web_ui`` is None, as in
Locust.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from ._version import __version__

__all__ = ["FLASK_MISSING", "FlaskMissingError", "WebUI"]

FLASK_MISSING = (
    "environment.web_ui.{what} needs {package}, which is not installed here: "
    "install Flask: pip install 'lcore[flask]'"
)


class FlaskMissingError(ImportError):
    """A Flask-only part of ``environment.web_ui`` was used where Flask is not installed."""


class WebUI:
    """The master's web UI as a locustfile sees it (Locust's ``locust.web.WebUI`` surface)."""

    greenlet: Any = None
    """Locust's server greenlet; lcore's server runs on the master's loop, so always None."""

    server: Any = None

    def __init__(
        self,
        environment: Any,
        *,
        web_login: bool = False,
        base_path: str = "",
        login_page: Callable[[dict[str, Any], str], str] | None = None,
        templates: dict[str, str] | None = None,
    ) -> None:
        environment.web_ui = self
        self.environment = environment
        self.web_login = web_login
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.template_args: dict[str, Any] = {}
        self.auth_args: dict[str, Any] = {}
        self.request_timeout = 30.0
        """Seconds a Flask handler may take before its request is answered 504 (lcore's)."""
        self._login_page = login_page  # (auth_args, base path) -> HTML: the exporters'
        # Jinja templates the app has of its own (Locust's app has its page as index.html)
        self._templates = dict(templates or {})
        self._app: Any = None
        self._login_manager: Any = None

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        made = "a Flask app" if self._app is not None else "no Flask app yet"
        return f"<lcore WebUI on the master, {made}>"

    # -- the Flask side --

    @property
    def app(self) -> Any:
        """The ``flask.Flask`` app whose routes the master serves beside its own."""
        if self._app is None:
            self._app = self._make_app()
        return self._app

    @property
    def app_if_made(self) -> Any:
        """The Flask app if a locustfile asked for it, else None (never imports Flask)."""
        return self._app

    @property
    def login_manager(self) -> Any:
        """Flask-Login's ``LoginManager`` on the app (with ``--web-login``, as in Locust)."""
        if not self.web_login:
            raise AttributeError("The login_manager is only available with --web-login.")
        try:
            self.app  # noqa: B018 - makes the app, and the login manager with it
        except FlaskMissingError:
            raise FlaskMissingError(FLASK_MISSING.format(what="login_manager", package="Flask")) from None
        if self._login_manager is None:
            raise FlaskMissingError(FLASK_MISSING.format(what="login_manager", package="Flask-Login"))
        return self._login_manager

    @login_manager.setter
    def login_manager(self, value: Any) -> None:
        self._login_manager = value

    @property
    def login_in_charge(self) -> bool:
        """The locustfile set up a login (``--web-login`` and a user or request loader): its
        login view, not lcore's form, decides who sees the page."""
        manager = self._login_manager
        if not self.web_login or manager is None:
            return False
        return (
            getattr(manager, "_user_callback", None) is not None
            or getattr(manager, "_request_callback", None) is not None
        )

    def auth_required_if_enabled(self, view_func: Callable[..., Any]) -> Callable[..., Any]:
        """A view decorator: Flask-Login's ``login_required`` when the locustfile's login is
        in charge; otherwise the view as it is (lcore's own authentication guards every route
        of the app already)."""

        @wraps(view_func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.login_in_charge:
                from flask_login import login_required

                return login_required(view_func)(*args, **kwargs)
            return view_func(*args, **kwargs)

        return wrapper

    def update_template_args(self) -> None:
        """Refresh ``template_args`` from the run, with Locust's keys where lcore has them."""
        env = self.environment
        runner = env.runner
        options = env.parsed_options
        classes = list(getattr(runner, "user_classes", None) or env.user_classes)
        hosts = {getattr(cls, "host", None) for cls in classes}
        host = env.host or getattr(runner, "host", "") or (next(iter(hosts)) if len(hosts) == 1 else "")
        stats = env.stats
        self.template_args.update(
            {
                "locustfile": env.locustfile,
                "state": getattr(runner, "state", None),
                "is_distributed": True,
                "user_count": getattr(runner, "user_count", 0),
                "version": __version__,
                "host": host or "",
                "history": list(getattr(stats, "history", []) or []),
                "override_host_warning": len(hosts) > 1 and not env.host,
                "missing_host_warning": not (host or env.host),
                "num_users": getattr(options, "num_users", None),
                "spawn_rate": getattr(options, "spawn_rate", None),
                "worker_count": getattr(runner, "worker_count", 0),
                "stats_history_enabled": getattr(options, "stats_history_enabled", False),
                "run_time": getattr(options, "run_time", None),
                "show_userclass_picker": bool(getattr(options, "class_picker", False)),
                "available_user_classes": sorted(env.available_user_classes) or None,
                "available_shape_classes": ["Default", *sorted(env.available_shape_classes)],
                "profile": getattr(env, "profile", None),
                "time": time.time(),
            }
        )

    def stop(self) -> None:
        """Locust's ``WebUI.stop``; lcore's server stops with the master."""

    def set_static_modern_ui(self) -> None:
        """Older Locust's switch to its React page (examples still call it): nothing to do."""

    def _make_app(self) -> Any:
        try:
            from flask import Blueprint, Flask, redirect
        except ImportError:
            raise FlaskMissingError(FLASK_MISSING.format(what="app", package="Flask")) from None
        # no static folder: /static/ is lcore's. The app's own templates (lcore's page as
        # "index.html") come first, as Locust's do; then the locustfile's blueprints'
        app = Flask("lcore.web_ui", static_folder=None, template_folder=None)
        if self._templates:
            from jinja2 import DictLoader

            app.jinja_loader = DictLoader(self._templates)
        # Locust's own endpoints that locustfiles name in url_for(): the page and its login
        # (lcore's server answers both paths; these views only exist to build the URLs)
        locust = Blueprint("locust", "lcore.web_ui", url_prefix=self.base_path or None)
        locust.add_url_rule("/", "index", lambda: redirect(self.base_path + "/"))
        locust.add_url_rule("/login", "login", self._login_view)
        app.register_blueprint(locust)
        if self.web_login:
            try:
                from flask_login import LoginManager
            except ImportError:  # routes still work; login_manager says what is missing
                return app
            manager = LoginManager()
            manager.init_app(app)
            manager.login_view = "locust.login"
            self._login_manager = manager
        return app

    def _login_view(self) -> Any:
        from flask import session

        # as Locust: a login_submit view leaves its message in the session for this page
        self.auth_args["error"] = session.get("auth_error")
        self.auth_args["info"] = session.get("auth_info")
        if self._login_page is None:
            return "Log in: no login page is set up on this master", 404
        return self._login_page(self.auth_args, self.base_path)
