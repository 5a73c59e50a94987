"""Locustfiles that extend the web UI with Flask, as Locust's examples do (extend_web_ui.py,
bottlenecked_server.py, web_ui_auth/), under a real lcore master: their routes answer on
lcore's port, behind lcore's authentication and base path, run on greenlets (a sleeping
handler stalls nothing, a hung one is answered 504), their ``after_request`` hooks apply, and a
locustfile's own Flask-Login login works with ``--web-login`` alone. Without Flask,
``environment.web_ui`` exists and names what to install."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from conftest import LcoreProcess, wait_until
from test_engine import free_port, read_stats_csv, write

from lcore.target import Target

pytestmark = pytest.mark.integration

BASE = "/lc"
AUTH = "admin:s3cret"

EXTENDED = """
import json
import time

from flask import Blueprint, jsonify, render_template, request
from locust import HttpUser, constant, events, task


class Browser(HttpUser):
    wait_time = constant(0.01)

    @task(2)
    def page(self):
        self.client.get("/page")

    @task
    def about(self):
        self.client.get("/about")


@events.init.add_listener
def on_init(environment, **_kwargs):
    if not environment.web_ui:
        return
    # a blueprint under the base path, as Locust's examples mount theirs
    extend = Blueprint("extend", "extend_web_ui", url_prefix=environment.parsed_options.web_base_path)

    @extend.route("/request-counts")
    def request_counts():
        rows = [
            {"method": e.method, "name": e.name, "num_requests": e.num_requests}
            for e in environment.stats.entries.values()
        ]
        return jsonify({"stats": rows, "total": environment.stats.total.num_requests})

    @extend.route("/extend")
    def extend_web_ui():
        environment.web_ui.update_template_args()
        extra = {"extended_tabs": [{"title": "Content Length", "key": "content-length"}]}
        return render_template("index.html", template_args={**environment.web_ui.template_args, **extra})

    @environment.web_ui.app.route("/nap")
    def nap():
        time.sleep(float(request.args["seconds"]))
        return "rested"

    @environment.web_ui.app.after_request
    def extend_stats_response(response):
        if request.path.endswith("/stats/requests"):
            extended = [{"key": "names", "data": len(environment.stats.entries)}]
            response.set_data(json.dumps({**response.json, "extended_stats": extended}))
        response.headers["X-Extended"] = "yes"
        return response

    environment.web_ui.app.register_blueprint(extend)
    environment.web_ui.request_timeout = 3
"""


def _basic(credentials: str = AUTH) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Client:
    """HTTP against one master: a cookie jar, no redirects followed, errors as answers."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def request(
        self, path: str, *, data: dict[str, str] | None = None, method: str | None = None,
        headers: dict[str, str] | None = None, timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


def _start(tmp: Path, source: str, *args: str, env: dict[str, str] | None = None) -> tuple[LcoreProcess, int]:
    locustfile = write(tmp, source)
    port = free_port()
    proc = LcoreProcess(
        ["-f", str(locustfile), "--web-port", str(port), "--web-host", "127.0.0.1",
         "--master-bind-port", str(free_port()), "--processes", "1", *args],
        tmp, env,
    )  # fmt: skip
    try:
        proc.wait_for_output("Starting web interface", timeout=30)
    except BaseException:
        proc.kill()
        raise
    return proc, port


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Target, LcoreProcess]]:
    """A master whose locustfile extends the page, a short --autostart run done, page still up."""
    tmp = tmp_path_factory.mktemp("extended")
    target = Target().start()
    proc = None
    try:
        proc, port = _start(
            tmp, EXTENDED, "-H", target.url, "--autostart", "-u", "3", "-r", "10", "-t", "2",
            "--web-auth", AUTH, "--web-base-path", BASE,
        )  # fmt: skip
        client = Client(f"http://127.0.0.1:{port}")
        proc.wait_for_output("--run-time limit reached", timeout=30)

        def stopped() -> bool:
            status, _, body = client.request(BASE + "/healthz")
            return status == 200 and json.loads(body)["state"] == "stopped"

        wait_until(stopped, timeout=15)
        yield client, target, proc
    finally:
        if proc is not None:
            proc.kill()
        target.stop()


def test_blueprint_route_answers_behind_web_auth_with_the_runs_stats(extended) -> None:
    client, target, _ = extended
    status, headers, _ = client.request(BASE + "/request-counts")
    assert status == 401 and "Basic" in headers["WWW-Authenticate"]

    status, _, body = client.request(BASE + "/request-counts", headers=_basic())
    assert status == 200, body
    counts = json.loads(body)
    served = target.counts()
    by_name = {row["name"]: row["num_requests"] for row in counts["stats"]}
    assert set(by_name) == {"/page", "/about"}
    assert by_name["/page"] == served[("GET", "/page")] > 0
    assert by_name["/about"] == served[("GET", "/about")] > 0
    assert counts["total"] == sum(by_name.values())
    # the same figures as lcore's own JSON
    _, _, body = client.request(BASE + "/api/stats", headers=_basic())
    ours = {row["name"]: row["num_requests"] for row in json.loads(body)["stats"]}
    assert ours["/page"] == by_name["/page"] and ours["Aggregated"] == counts["total"]


def test_after_request_hook_applies_to_its_routes_and_lcores(extended) -> None:
    client, _, _ = extended
    status, headers, _ = client.request(BASE + "/request-counts", headers=_basic())
    assert status == 200 and headers["X-Extended"] == "yes"
    # Locust's examples add a key to /stats/requests this way
    status, headers, body = client.request(BASE + "/stats/requests", headers=_basic())
    assert status == 200 and headers["X-Extended"] == "yes"
    document = json.loads(body)
    assert document["extended_stats"] == [{"key": "names", "data": 2}]
    assert document["stats"][-1]["name"] == "Aggregated"  # lcore's document, kept whole
    # probes and scrapes never wait on locustfile code
    status, headers, _ = client.request(BASE + "/healthz")
    assert status == 200 and "X-Extended" not in headers
    status, headers, _ = client.request(BASE + "/metrics", headers=_basic())
    assert status == 200 and "X-Extended" not in headers


def test_a_sleeping_handler_stalls_nothing_and_a_hung_one_answers_504(extended) -> None:
    client, _, proc = extended
    answers: dict[str, Any] = {}

    def nap(seconds: str, key: str) -> None:
        started = time.monotonic()
        answers[key] = (*client.request(f"{BASE}/nap?seconds={seconds}", headers=_basic()), time.monotonic() - started)

    sleeper = threading.Thread(target=nap, args=("2", "short"))
    hung = threading.Thread(target=nap, args=("60", "hung"))
    sleeper.start()
    hung.start()
    try:
        time.sleep(0.2)  # both handlers are asleep on the master by now
        started = time.monotonic()
        status, _, _ = client.request(BASE + "/healthz", timeout=5)
        assert status == 200 and time.monotonic() - started < 1.0
        assert sleeper.is_alive() and hung.is_alive()
    finally:
        sleeper.join(10)
        hung.join(10)
    status, _, body, took = answers["short"]
    assert (status, body) == (200, b"rested") and 1.9 < took < 4
    status, _, body, took = answers["hung"]
    assert status == 504 and b"3 s" in body and 2.9 < took < 6
    assert "took more than 3 s: answered 504" in proc.output


def test_a_view_rendering_locusts_index_template_gets_lcores_page(extended) -> None:
    client, _, _ = extended
    status, headers, page = client.request(BASE + "/extend", headers=_basic())
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<title>lcore</title>" in page and f'<base href="{BASE}/">'.encode() in page


def test_lcore_routes_win_and_unknown_paths_are_the_apps(extended) -> None:
    client, _, _ = extended
    status, _, _ = client.request(BASE + "/api/stats", method="DELETE", headers=_basic())
    assert status == 405  # lcore's path, another method: not handed to the app
    status, _, _ = client.request(BASE + "/nothing-here", headers=_basic())
    assert status == 404
    status, _, _ = client.request(BASE + "/healthz")  # open, as always
    assert status == 200


BOTTLENECKED = """
import time
from threading import Semaphore

from locust import HttpUser, constant, events, task

sema = Semaphore(2)


class WebsiteUser(HttpUser):
    wait_time = constant(0)

    @task
    def index(self):
        self.client.get("/fast")
        self.client.get("/slow")


@events.init.add_listener
def locust_init(environment, **kwargs):
    # Locust's example asserts web_ui here, which holds in its single-process mode only: lcore's
    # users run on workers, where (as on Locust's workers) there is no web UI
    if not environment.web_ui:
        return

    @environment.web_ui.app.route("/slow")
    def slow():
        with sema:
            time.sleep(0.3)
        return "slow"

    @environment.web_ui.app.route("/fast")
    def fast():
        time.sleep(0.02)
        return "fast"
"""


def test_users_load_the_masters_own_flask_routes(tmp_path) -> None:
    """bottlenecked_server.py: the users' target is the master's page, extended with routes
    whose handlers block (cooperatively) — they queue on the semaphore, the run goes on."""
    port = free_port()
    locustfile = write(tmp_path, BOTTLENECKED)
    proc = LcoreProcess(
        ["-f", str(locustfile), "-H", f"http://127.0.0.1:{port}", "--web-port", str(port),
         "--master-bind-port", str(free_port()), "--processes", "1",
         "--headless", "-u", "6", "-r", "20", "-t", "3", "--csv", str(tmp_path / "run")],
        tmp_path,
    )  # fmt: skip
    try:
        assert proc.wait(60) == 0, proc.output[-3000:]
    finally:
        proc.kill()
    rows = read_stats_csv(tmp_path / "run")
    slow, fast = rows["/slow"], rows["/fast"]
    assert int(slow["Request Count"]) > 5 and int(fast["Request Count"]) > 5
    assert slow["Failure Count"] == fast["Failure Count"] == "0"
    # six users share two slots of 0.3 s: the slow route's median shows the queue
    assert float(slow["Median Response Time"]) > 500, slow


CACHE_STATS = """
import json

from flask import make_response, request
from locust import HttpUser, constant, events, task

cache_stats = {}


class Visitor(HttpUser):
    wait_time = constant(0.02)

    @task(2)
    def hit(self):
        self.client.get("/response-headers?X-Cache=HIT")

    @task
    def miss(self):
        self.client.get("/response-headers?X-Cache=MISS")


@events.init.add_listener
def locust_init(environment, **kwargs):
    if not environment.web_ui:
        return

    @environment.web_ui.app.route("/response-headers")  # httpbin's, for the users
    def response_headers():
        response = make_response("ok")
        for name, value in request.args.items():
            response.headers[name] = value
        return response

    @environment.web_ui.app.after_request
    def extend_stats_response(response):
        if request.path == "/stats/requests":
            extended = [{"key": "name", "data": cache_stats}]
            response.set_data(json.dumps({**response.json, "extended_stats": extended}))
        return response


@events.request.add_listener
def on_request(name, response, exception, **kwargs):
    counts = cache_stats.setdefault(name, {"hit": 0, "miss": 0})
    counts[response.headers["X-Cache"].lower()] += 1


@events.report_to_master.add_listener
def on_report_to_master(client_id, data):
    global cache_stats
    data["cache_stats"], cache_stats = cache_stats, {}


@events.worker_report.add_listener
def on_worker_report(client_id, data):
    for name, counts in data["cache_stats"].items():
        mine = cache_stats.setdefault(name, {"hit": 0, "miss": 0})
        for key, value in counts.items():
            mine[key] += value
"""


def test_figures_the_workers_report_reach_the_masters_after_request_hook(tmp_path) -> None:
    """extend_modern_web_ui_cache_stats.py: workers count a response header, send the counts
    with their stats reports, the master adds them to /stats/requests."""
    port = free_port()
    locustfile = write(tmp_path, CACHE_STATS)
    proc = LcoreProcess(
        ["-f", str(locustfile), "-H", f"http://127.0.0.1:{port}", "--web-port", str(port),
         "--master-bind-port", str(free_port()), "--processes", "2",
         "--autostart", "-u", "4", "-r", "20", "-t", "2"],
        tmp_path,
    )  # fmt: skip
    client = Client(f"http://127.0.0.1:{port}")
    try:
        proc.wait_for_output("--run-time limit reached", timeout=30)

        def settled() -> Any:
            status, _, body = client.request("/stats/requests")
            document = json.loads(body)
            counts = {row["name"]: row["num_requests"] for row in document["stats"]}
            cached = document["extended_stats"][0]["data"]
            hits = cached.get("/response-headers?X-Cache=HIT", {})
            misses = cached.get("/response-headers?X-Cache=MISS", {})
            done = document["state"] == "stopped" and hits.get("hit") == counts.get(
                "/response-headers?X-Cache=HIT"
            ) and misses.get("miss") == counts.get("/response-headers?X-Cache=MISS")
            return (counts, cached) if done else None

        counts, cached = wait_until(settled, timeout=15)
        assert counts["/response-headers?X-Cache=HIT"] > 10 and counts["/response-headers?X-Cache=MISS"] > 5
        assert cached["/response-headers?X-Cache=HIT"]["miss"] == 0
        assert "Traceback" not in proc.output, proc.output[-3000:]
    finally:
        proc.kill()


AUTH_LOCUSTFILE = """
import os

from flask import Blueprint, redirect, request, session, url_for
from flask_login import UserMixin, current_user, login_user
from locust import HttpUser, events, task


class LocustHttpUser(HttpUser):
    @task
    def example(self):
        self.client.get("/")


class AuthUser(UserMixin):
    def __init__(self, username):
        self.username = username

    def get_id(self):
        return self.username


def load_user(username):
    return AuthUser(username)


@events.init.add_listener
def locust_init(environment, **_kwargs):
    if environment.web_ui:
        base = environment.parsed_options.web_base_path
        auth_blueprint = Blueprint("auth", "web_ui_auth", url_prefix=base)
        environment.web_ui.login_manager.user_loader(load_user)
        environment.web_ui.app.config["SECRET_KEY"] = os.getenv("FLASK_SECRET_KEY")
        environment.web_ui.auth_args = {
            "username_password_callback": f"{base}/login_submit",
            "auth_providers": [{"label": "Github", "callback_url": f"{base}/login/github"}],
        }

        @auth_blueprint.route("/login/github")
        def github_login():
            login_user(AuthUser("from-github"))
            return redirect(url_for("locust.index"))

        @auth_blueprint.route("/login_submit", methods=["POST"])
        def login_submit():
            if request.form.get("password"):
                login_user(AuthUser(request.form.get("username")))
                return redirect(url_for("locust.index"))
            session["auth_error"] = "Invalid username or password"
            return redirect(url_for("locust.login"))

        @auth_blueprint.route("/whoami")
        @environment.web_ui.auth_required_if_enabled
        def whoami():
            return {"user": current_user.username}

        environment.web_ui.app.register_blueprint(auth_blueprint)
"""


def test_a_locustfiles_flask_login_guards_the_page_with_web_login_alone(tmp_path, target) -> None:
    proc, port = _start(
        tmp_path, AUTH_LOCUSTFILE, "-H", target.url, "--web-login",
        env={"FLASK_SECRET_KEY": "not-so-secret"},
    )  # fmt: skip
    try:
        client = Client(f"http://127.0.0.1:{port}")
        html = {"Accept": "text/html"}
        status, headers, _ = client.request("/", headers=html)
        assert status == 302 and headers["Location"] == "/login"
        assert client.request("/api/stats")[0] == 401
        status, headers, _ = client.request("/whoami")
        assert status == 302 and headers["Location"].startswith("/login")

        status, _, page = client.request("/login", headers=html)
        assert status == 200
        assert b'action="/login_submit"' in page and b'href="/login/github"' in page

        status, headers, _ = client.request("/login_submit", data={"username": "ann", "password": ""})
        assert status == 302 and headers["Location"] == "/login"
        assert b"Invalid username or password" in client.request("/login", headers=html)[2]
        assert client.request("/api/stats")[0] == 401

        status, headers, _ = client.request("/login_submit", data={"username": "ann", "password": "pw"})
        assert status == 302 and headers["Location"] == "/"
        status, _, page = client.request("/", headers=html)
        assert status == 200 and b"<html" in page  # lcore's page, let in by the Flask session
        assert client.request("/api/stats")[0] == 200
        assert json.loads(client.request("/whoami")[2]) == {"user": "ann"}

        # another browser, the provider's link
        other = Client(client.base)
        assert other.request("/login/github")[0] == 302
        assert json.loads(other.request("/whoami")[2]) == {"user": "from-github"}
        assert "Traceback" not in proc.output, proc.output[-3000:]
    finally:
        proc.kill()


def test_web_login_without_web_auth_or_a_locustfile_login_is_refused(tmp_path, target) -> None:
    locustfile = write(tmp_path, "from locust import HttpUser, task\n\nclass U(HttpUser):\n    @task\n    def t(self):\n        pass\n")
    proc = LcoreProcess(
        ["-f", str(locustfile), "-H", target.url, "--web-login", "--web-port", str(free_port()),
         "--master-bind-port", str(free_port()), "--processes", "1"],
        tmp_path,
    )  # fmt: skip
    try:
        assert proc.wait(30) != 0
        assert "--web-login needs --web-auth USER:PASSWORD to check, or a login set up by the locustfile" in proc.output
    finally:
        proc.kill()


NO_FLASK_LOCUSTFILE = """
from locust import HttpUser, events, task


class U(HttpUser):
    @task
    def t(self):
        self.client.get("/")


@events.init.add_listener
def locust_init(environment, **kwargs):
    assert environment.web_ui, "environment.web_ui is false"
    environment.web_ui.update_template_args()
    print("template_args state:", environment.web_ui.template_args["state"])

    @environment.web_ui.app.route("/slow")
    def slow():
        return "slow"
"""


def test_without_flask_web_ui_exists_and_says_what_to_install(tmp_path, target) -> None:
    locustfile = write(tmp_path, NO_FLASK_LOCUSTFILE)
    # the launcher forks master and workers: a Flask that cannot be imported stays so in all
    blocked = (
        "import sys; sys.modules['flask'] = None; sys.modules['flask_login'] = None; "
        "from lcore.launcher.main import main; sys.exit(main())"
    )
    args = ["-f", str(locustfile), "-H", target.url, "--headless", "-u", "1", "-t", "2",
            "--web-port", str(free_port()), "--master-bind-port", str(free_port()), "--processes", "1"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", blocked, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "template_args state:" in out  # the object is there, true, and its plain parts work
    assert "environment.web_ui.app needs Flask, which is not installed here" in out
    assert "install Flask: pip install 'lcore[flask]'" in out


# -- the pieces, in memory ---------------------------------------------------------------------


def test_web_ui_without_flask_is_true_and_names_the_extra(monkeypatch) -> None:
    from lcore.env import Environment
    from lcore.web_ui import FlaskMissingError, WebUI

    monkeypatch.setitem(sys.modules, "flask", None)
    env = Environment()
    web_ui = WebUI(env, web_login=True)
    assert env.web_ui is web_ui and bool(web_ui)
    web_ui.update_template_args()
    assert web_ui.template_args["is_distributed"] is True and web_ui.auth_args == {}
    with pytest.raises(FlaskMissingError, match=r"install Flask: pip install 'lcore\[flask\]'"):
        web_ui.app  # noqa: B018
    with pytest.raises(ImportError, match="login_manager needs Flask"):
        web_ui.login_manager  # noqa: B018
    assert web_ui.app_if_made is None and not web_ui.login_in_charge


def test_login_manager_only_with_web_login_and_auth_required_follows_it() -> None:
    from flask_login import UserMixin

    from lcore.env import Environment
    from lcore.web_ui import WebUI

    plain = WebUI(Environment())
    with pytest.raises(AttributeError, match="only available with --web-login"):
        plain.login_manager  # noqa: B018
    guarded = plain.auth_required_if_enabled(lambda: "open")
    with plain.app.test_request_context("/x"):
        assert guarded() == "open"  # lcore's own authentication guards it

    web_ui = WebUI(Environment(), web_login=True)
    web_ui.app.config["SECRET_KEY"] = "k"
    assert not web_ui.login_in_charge  # no user loader yet: lcore's --web-auth form decides
    web_ui.login_manager.user_loader(lambda user_id: type("U", (UserMixin,), {"id": user_id})())
    assert web_ui.login_in_charge
    view = web_ui.auth_required_if_enabled(lambda: "secret")
    with web_ui.app.test_request_context("/x"):
        answer = view()
        assert answer.status_code == 302 and answer.location.startswith("/login")


def test_login_page_renders_auth_args_escaped() -> None:
    from lcore.exporters.web_flask import login_page

    page = login_page(
        {
            "custom_form": {
                "inputs": [
                    {"label": "Username", "name": "username"},
                    {"label": "Admin", "name": "is_admin", "default_value": False},
                    {"label": "Group", "name": "group", "choices": ["dev", "ops"]},
                    {"label": "Password", "name": "password", "is_secret": True},
                ],
                "callback_url": "/base/login_submit",
                "submit_button_text": "Submit <now>",
            },
            "auth_providers": [{"label": "Github", "callback_url": "/login/github"}],
            "error": "Passwords do not match!",
        },
        "/base",
    )
    assert '<form method="post" action="/base/login_submit">' in page
    assert '<input type="checkbox" name="is_admin">' in page
    assert '<select name="group"><option value="dev">dev</option>' in page
    assert '<input name="password" type="password">' in page
    assert "Submit &lt;now&gt;" in page and "<now>" not in page
    assert 'href="/login/github"' in page and "Passwords do not match!" in page
    assert 'href="/base/static/style.css"' in page


def test_wsgi_environ_from_an_aiohttp_request() -> None:
    from aiohttp.test_utils import make_mocked_request

    from lcore.exporters.web_flask import wsgi_environ

    request = make_mocked_request(
        "POST", "/lc/caf%C3%A9/x?a=1&b=%20",
        headers={"Host": "example.test:8089", "Content-Type": "application/x-www-form-urlencoded",
                 "Cookie": "session=abc", "X-Thing": "1"},
    )  # fmt: skip
    environ = wsgi_environ(request, b"a=1")
    assert environ["PATH_INFO"] == "/lc/café/x".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "a=1&b=%20" and environ["SCRIPT_NAME"] == ""
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.test", "8089")
    assert environ["CONTENT_LENGTH"] == "3" and environ["wsgi.input"].read() == b"a=1"
    assert environ["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert environ["HTTP_COOKIE"] == "session=abc" and environ["HTTP_X_THING"] == "1"
    assert "HTTP_CONTENT_TYPE" not in environ


def test_flask_without_flask_login_keeps_the_app_and_names_the_missing_package(monkeypatch) -> None:
    from lcore.env import Environment
    from lcore.web_ui import FlaskMissingError, WebUI

    monkeypatch.setitem(sys.modules, "flask_login", None)
    web_ui = WebUI(Environment(), web_login=True)
    assert web_ui.app.url_map is not None  # routes can still be added
    with pytest.raises(FlaskMissingError, match="login_manager needs Flask-Login"):
        web_ui.login_manager  # noqa: B018


def test_an_app_without_a_secret_key_gets_one_for_the_run() -> None:
    from lcore.env import Environment
    from lcore.exporters.web_flask import FlaskBridge
    from lcore.web_ui import WebUI

    web_ui = WebUI(Environment(), web_login=True)
    web_ui.app.config["SECRET_KEY"] = None  # os.getenv of an unset variable, as Locust's example
    FlaskBridge(web_ui, calls=None)._ensure_secret_key()
    assert isinstance(web_ui.app.secret_key, str) and len(web_ui.app.secret_key) == 64
    kept = WebUI(Environment())
    kept.app.config["SECRET_KEY"] = "mine"
    FlaskBridge(kept, calls=None)._ensure_secret_key()
    assert kept.app.secret_key == "mine"


ASSERTS_WEB_UI = """
import os
import time
from threading import Semaphore

from locust import HttpUser, constant, events, task

sema = Semaphore(4)


class WebsiteUser(HttpUser):
    host = "http://127.0.0.1:" + os.environ["WEB_PORT"]
    wait_time = constant(0.05)

    @task
    def index(self):
        self.client.get("/fast")
        self.client.get("/slow")


@events.init.add_listener
def locust_init(environment, **kwargs):
    assert environment.web_ui, "you can't run this headless"

    @environment.web_ui.app.route("/slow")
    def slow():
        with sema:
            time.sleep(0.2)
        return "slow"

    @environment.web_ui.app.route("/fast")
    def fast():
        time.sleep(0.01)
        return "fast"
"""


def test_locusts_bottlenecked_server_runs_unchanged(tmp_path, run_lcore) -> None:
    """It asserts environment.web_ui in init, which Locust's single process has: lcore's
    local workers have it too, and the master serves the routes."""
    web_port = free_port()
    lf = tmp_path / "bottlenecked.py"
    lf.write_text(ASSERTS_WEB_UI)
    prefix = tmp_path / "bn"
    proc = run_lcore(
        "-f", str(lf), "--headless", "-u", "4", "-r", "100", "-t", "3s", "--processes", "2",
        "--web-host", "127.0.0.1", "--web-port", str(web_port), "--csv", str(prefix),
        "--master-bind-port", str(free_port()), env={"WEB_PORT": str(web_port)},
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-3000:]
    rows = read_stats_csv(prefix)
    assert int(rows["/slow"]["Request Count"]) > 0 and int(rows["/slow"]["Failure Count"]) == 0
    assert int(rows["/fast"]["Failure Count"]) == 0
