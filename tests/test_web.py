"""The status server in-process: real HTTP on loopback against a MasterRuntime without workers,
and the HTML report."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from lcore.env import Environment
from lcore.exporters.report_html import render_html_report, write_html_report
from lcore.exporters.web import StatusServer, history_sample, start_web
from lcore.master import MasterRuntime, WorkerNode
from lcore.stats import RequestStats
from lcore.users import HttpUser


class Visitor(HttpUser):
    host = "http://127.0.0.1:1"


def make_runtime() -> MasterRuntime:
    runtime = MasterRuntime(Environment(user_classes=[Visitor]), endpoints=[], digest="test")
    runtime.host = "http://127.0.0.1:1"
    return runtime


def record(runtime: MasterRuntime, n: int = 10, failures: int = 0, worker: str = "w1") -> None:
    stats = RequestStats()
    for i in range(n):
        stats.record("GET", "/<b>page</b>", 5.0 + i, 100, "boom <i>" if i < failures else None)
    runtime.stats_merged.merge(worker, stats.take_delta())


def options(**overrides: Any) -> SimpleNamespace:
    defaults: dict[str, Any] = {
        "web_host": "127.0.0.1",
        "web_port": 0,
        "web_auth": None,
        "web_token": None,
        "web_login": False,
        "headless": False,
        "web_base_path": "",
        "tls_cert": "",
        "tls_key": "",
        "metrics_buckets": None,
    }
    defaults.update(overrides)
    return SimpleNamespace(**defaults)


Scenario = Callable[[MasterRuntime, StatusServer, aiohttp.ClientSession], Awaitable[None]]


@asynccontextmanager
async def serving(runtime: MasterRuntime, **opts: Any) -> AsyncIterator[tuple[StatusServer, str]]:
    server = await start_web(runtime, options(**opts))
    try:
        yield server, f"http://127.0.0.1:{server.port}{server.base_path}/"
    finally:
        await server.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


# -- reading ---------------------------------------------------------------------------------------


def test_page_api_health_and_metrics_are_served() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        record(runtime, 10, failures=2)
        async with serving(runtime) as (_, base), aiohttp.ClientSession() as http:
            async with http.get(base) as r:
                page = await r.text()
                assert r.status == 200 and r.content_type == "text/html"
                assert "static/app.js" in page and "Content-Security-Policy" in r.headers
            for path in ("static/app.js", "static/style.css"):
                async with http.get(base + path) as r:
                    assert r.status == 200
            async with http.get(base + "static/../web.py") as r:
                assert r.status == 404
            async with http.get(base + "healthz") as r:
                assert r.status == 200 and (await r.json())["state"] == "ready"
            async with http.get(base + "api/stats") as r:
                doc = await r.json()
            assert doc["readonly"] is False and doc["user_classes"] == ["Visitor"]
            page_row, total = doc["stats"]
            assert page_row["name"] == "/<b>page</b>" and page_row["num_requests"] == 10
            assert page_row["num_failures"] == 2 and total["name"] == "Aggregated"
            assert page_row["min_response_time"] == 5.0 and page_row["max_response_time"] == 14.0
            assert doc["errors"] == [
                {"method": "GET", "name": "/<b>page</b>", "error": "boom <i>", "occurrences": 2}
            ]
            # Locust's path and field names, as scripts read them
            async with http.get(base + "stats/requests") as r:
                locust = await r.json()
            for key in ("stats", "errors", "total_rps", "fail_ratio", "state", "user_count",
                        "current_response_time_percentiles", "workers", "total_fail_per_sec"):  # fmt: skip
                assert key in locust
            assert locust["fail_ratio"] == 0.2
            assert "response_time_percentile_0.95" in locust["current_response_time_percentiles"]
            for key in ("median_response_time", "response_time_percentile_0.99", "current_rps",
                        "avg_content_length", "total_rps", "safe_name"):  # fmt: skip
                assert key in locust["stats"][0]
            async with http.get(base + "exceptions") as r:
                assert (await r.json()) == {"exceptions": []}
            async with http.get(base + "metrics") as r:
                assert r.status == 200 and r.content_type == "text/plain"
                assert (
                    'lcore_requests_total{method="GET",name="/<b>page</b>"} 10.0' in await r.text()
                )

    run(scenario)


def test_workers_are_listed_lost_ones_too() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        runtime.workers["w1"] = WorkerNode("w1", "box", 10, 2, 0, state="running", cpu=42.0)
        runtime.workers["w1"].user_classes_count = {"Visitor": 3}
        runtime.lost_workers.append(WorkerNode("w2", "box", 11, 2, 1, state="running"))
        record(runtime, 4, worker="w1")
        async with serving(runtime) as (_, base), aiohttp.ClientSession() as http:
            async with http.get(base + "api/workers") as r:
                doc = await r.json()
        assert doc["worker_count"] == 1
        first, lost = doc["workers"]
        assert (first["id"], first["user_count"], first["cpu_usage"], first["num_requests"]) == (
            "w1", 3, 42.0, 4,
        )  # fmt: skip
        assert lost["state"] == "missing"

    run(scenario)


def test_history_is_sampled_while_a_test_runs_and_restarts_after_a_reset() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        server = StatusServer(runtime, host="127.0.0.1", port=0, history_interval=0.02)
        await server.start()
        base = server.url
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.sleep(0.1)
                async with http.get(base + "api/history") as r:
                    assert (await r.json())["samples"] == []  # nothing runs: nothing sampled
                runtime.start(3, 1.0)
                record(runtime, 5)
                await eventually(lambda: len(runtime.stats_merged.history) >= 3)
                async with http.get(base + "api/history") as r:
                    doc = await r.json()
                epoch, samples = doc["epoch"], doc["samples"]
                assert samples[-1]["state"] == "spawning"
                assert {
                    "time",
                    "user_count",
                    "current_rps",
                    "response_time_percentile_0.95",
                } <= set(samples[-1])
                since = samples[1]["time"]
                async with http.get(base + f"api/history?since={since}") as r:
                    later = (await r.json())["samples"]
                assert later and all(s["time"] > since for s in later)
                async with http.get(base + "api/history?since=soon") as r:
                    assert r.status == 400
                runtime.reset_stats()
                async with http.get(base + "api/history") as r:
                    assert (await r.json())["epoch"] == epoch + 1
        finally:
            await server.close()

    run(scenario)


def test_history_sample_reports_current_figures() -> None:
    runtime = make_runtime()
    record(runtime, 20)
    sample = history_sample(runtime, now=123.0)
    assert sample["time"] == 123.0
    assert sample["response_time_percentile_0.5"] == pytest.approx(14.0, rel=0.01)


# -- control ----------------------------------------------------------------------------------------


def test_controls_start_change_stop_and_reset() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        async with serving(runtime) as (_, base), aiohttp.ClientSession() as http:
            form = {"user_count": "5", "spawn_rate": "2.5", "host": "http://127.0.0.1:9/<x>"}
            async with http.post(base + "api/swarm", data=form) as r:
                doc = await r.json()
            assert r.status == 200 and doc["success"]
            assert (runtime.state, runtime.target_user_count, runtime.spawn_rate) == (
                "spawning", 5, 2.5,
            )  # fmt: skip
            assert runtime.host == "http://127.0.0.1:9/x"
            # JSON works too, and changes the user count of the running test
            async with http.post(base + "api/swarm", json={"user_count": 8, "spawn_rate": 4}) as r:
                assert r.status == 200
            assert runtime.target_user_count == 8
            for bad in (
                {"user_count": "-1", "spawn_rate": "1"},
                {"user_count": "x", "spawn_rate": "1"},
                {"user_count": "3", "spawn_rate": "0"},
                {"user_count": "3", "spawn_rate": "nan"},
                {"user_count": "3", "spawn_rate": "1", "host": "ftp://x"},
            ):
                async with http.post(base + "api/swarm", data=bad) as r:
                    assert r.status == 400, bad
                    assert not (await r.json())["success"]
            async with http.get(base + "api/stop") as r:
                assert r.status == 405  # state changes are POST only
            async with http.post(base + "api/stop") as r:
                assert r.status == 200
            await asyncio.wait_for(runtime.wait_stopped(), timeout=10)
            record(runtime, 3)
            async with http.post(base + "api/reset") as r:
                assert r.status == 200
            assert runtime.stats_merged.num_requests == 0
            # Locust's own paths
            async with http.post(base + "swarm", data={"user_count": "2", "spawn_rate": "1"}) as r:
                assert (await r.json())["success"] and runtime.target_user_count == 2
            async with http.get(base + "stop") as r:
                assert (await r.json())["success"]
            record(runtime, 3)
            async with http.get(base + "stats/reset") as r:
                assert await r.text() == "ok"
            assert runtime.stats_merged.num_requests == 0

    run(scenario)


def test_headless_is_read_only() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        async with serving(runtime, headless=True) as (_, base), aiohttp.ClientSession() as http:
            for method, path in (("POST", "api/swarm"), ("POST", "api/stop"), ("POST", "api/reset"),
                                 ("POST", "swarm"), ("GET", "stop"), ("GET", "stats/reset")):  # fmt: skip
                async with http.request(method, base + path, data={"user_count": "1"}) as r:
                    assert r.status == 403, path
                    assert "read-only" in (await r.json())["message"]
            async with http.get(base + "api/stats") as r:
                assert (await r.json())["readonly"] is True
            for path in ("", "metrics", "healthz"):
                async with http.get(base + path) as r:
                    assert r.status == 200
        assert runtime.state == "ready"

    run(scenario)


def test_cross_site_posts_are_refused() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        async with serving(runtime) as (server, base), aiohttp.ClientSession() as http:
            headers = {"Origin": "http://evil.example"}
            async with http.post(base + "api/stop", headers=headers) as r:
                assert r.status == 403
            same = {"Origin": f"http://127.0.0.1:{server.port}"}
            async with http.post(base + "api/reset", headers=same) as r:
                assert r.status == 200

    run(scenario)


# -- authentication --------------------------------------------------------------------------------


def test_basic_auth_and_token_protect_all_but_healthz(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        runtime = make_runtime()
        secret, token = "pa:ss-w0rd", "t0ken-value"
        async with serving(runtime, web_auth=f"admin:{secret}", web_token=token) as (_, base):
            good = {"Authorization": "Basic " + b64encode(f"admin:{secret}".encode()).decode()}
            wrong = {"Authorization": "Basic " + b64encode(b"admin:nope").decode()}
            bearer = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession() as http:
                for path in ("", "api/stats", "metrics", "static/app.js", "stats/requests",
                             "logs", "api/logs", "api/start-form"):  # fmt: skip
                    async with http.get(base + path) as r:
                        assert r.status == 401, path
                        assert r.headers["WWW-Authenticate"].startswith("Basic")
                    async with http.get(base + path, headers=wrong) as r:
                        assert r.status == 401, path
                    for headers in (good, bearer):
                        async with http.get(base + path, headers=headers) as r:
                            assert r.status == 200, path
                            assert secret not in await r.text() and token not in await r.text()
                async with http.get(base + "healthz") as r:
                    assert r.status == 200
                async with http.post(base + "api/stop") as r:
                    assert r.status == 401
                async with http.get(base + "metrics", headers={"Authorization": "Bearer x"}) as r:
                    assert r.status == 401
        assert secret not in caplog.text and token not in caplog.text

    run(scenario)


def test_login_form_sets_a_session() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        async with serving(runtime, web_auth="admin:pw", web_login=True) as (_, base):
            # unsafe: the jar keeps cookies of an IP address host only when told to
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                html = {"Accept": "text/html"}
                async with http.get(base, headers=html, allow_redirects=False) as r:
                    assert r.status == 302 and r.headers["Location"].endswith("/login")
                async with http.get(base + "login") as r:
                    assert r.status == 200 and 'name="password"' in await r.text()
                bad = {"username": "admin", "password": "no"}
                async with http.post(base + "login", data=bad, allow_redirects=False) as r:
                    assert r.status == 401 and "Wrong user or password" in await r.text()
                ok = {"username": "admin", "password": "pw"}
                async with http.post(base + "login", data=ok, allow_redirects=False) as r:
                    assert r.status == 302
                    assert r.cookies["lcore_session"]["httponly"]
                async with http.get(base + "api/stats") as r:
                    assert r.status == 200

    run(scenario)


def test_bad_settings_and_busy_ports_are_os_errors() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        with pytest.raises(OSError, match="--web-login needs --web-auth"):
            await start_web(runtime, options(web_login=True))
        with pytest.raises(OSError, match="USER:PASSWORD"):
            await start_web(runtime, options(web_auth="nocolon"))
        with pytest.raises(OSError, match="--metrics-buckets"):
            await start_web(runtime, options(metrics_buckets="1,0.5"))
        async with serving(runtime) as (server, _):
            with pytest.raises(OSError) as caught:
                await start_web(runtime, options(web_port=server.port))
            assert caught.value.errno == errno.EADDRINUSE

    run(scenario)


def test_base_path_and_custom_buckets() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        record(runtime, 3)
        opts = {"web_base_path": "/lcore/", "metrics_buckets": "0.5,5"}
        async with serving(runtime, **opts) as (_, base), aiohttp.ClientSession() as http:
            assert base.endswith("/lcore/")
            for path in ("", "api/stats", "static/style.css"):
                async with http.get(base + path) as r:
                    assert r.status == 200, path
            async with http.get(base + "metrics") as r:
                text = await r.text()
            # the response times from the send, then from the intended start: the same buckets
            assert re.findall(r'[{,]le="([^"]+)"', text) == ["0.5", "5.0", "+Inf"] * 2

    run(scenario)


# -- downloads and the HTML report -----------------------------------------------------------------


def test_report_download_and_csv() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        record(runtime, 5, failures=1)
        async with serving(runtime) as (_, base), aiohttp.ClientSession() as http:
            async with http.get(base + "stats/report") as r:
                assert r.status == 200 and "<table>" in await r.text()
            async with http.get(base + "stats/report?download=1") as r:
                assert "attachment" in r.headers["Content-Disposition"]
            async with http.get(base + "stats/requests/csv") as r:
                if r.status == 503:
                    pytest.skip("report_csv does not write files yet")
                assert r.status == 200 and r.content_type == "text/csv"
                assert "attachment" in r.headers["Content-Disposition"]
                assert "Aggregated" in await r.text()

    run(scenario)


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    runtime = make_runtime()
    record(runtime, 10, failures=3)
    runtime.stats_merged.exceptions[("ZeroDivisionError", "Traceback <here>")] = SimpleNamespace(
        count=2, msg="ZeroDivisionError", traceback="Traceback <here>", nodes={"w1"}
    )
    runtime.stats_merged.history.extend(
        {**history_sample(runtime, now=1000.0 + i), "user_count": i} for i in range(5)
    )
    path = tmp_path / "report.html"
    write_html_report(runtime, str(path))
    html = path.read_text()
    assert html.startswith("<!doctype html>")
    assert "&lt;b&gt;page&lt;/b&gt;" in html and "<b>page</b>" not in html  # escaped
    assert "boom &lt;i&gt;" in html and "Traceback &lt;here&gt;" in html
    assert html.count("<svg") == 3 and "<polyline" in html
    # nothing to fetch: no scripts, stylesheets, images or fonts from anywhere
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert not re.search(r"(src|href)=|url\(", html)
    # the only addresses: the host, as text, and the SVG namespace
    assert set(re.findall(r"https?://[^\s\"'<]+", html)) == {
        "http://127.0.0.1:1",
        "http://www.w3.org/2000/svg",
    }
    # without history (--no-web) the tables are there, the charts are not
    runtime.stats_merged.history.clear()
    assert "<svg" not in render_html_report(runtime)


# -- the start form ----------------------------------------------------------------------------


class Other(HttpUser):
    host = "http://127.0.0.1:1"


def form_runtime(*classes: type) -> MasterRuntime:
    runtime = MasterRuntime(
        Environment(user_classes=list(classes or [Visitor])),
        endpoints=[],
        digest="test",
        options_for_workers={"region": "eu", "token": "t0p", "count": 2, "ids": [1, 2], "dry": False},
    )
    runtime.host = "http://127.0.0.1:1"
    return runtime


def launcher_options() -> list[Any]:
    from lcore.launcher.parser import CustomOption

    def opt(dest: str, **kw: Any) -> CustomOption:
        meta = dict(default=None, help=f"help {dest}", choices=None, include_in_web_ui=True,
                    is_secret=False, is_required=False)  # fmt: skip
        meta.update(kw)
        return CustomOption(dest=dest, flag="--" + dest, **meta)

    return [
        opt("region", choices=("eu", "us")),
        opt("token", is_secret=True),
        opt("count"),
        opt("ids"),
        opt("dry"),
        opt("internal", include_in_web_ui=False),
    ]


def test_start_form_describes_the_locustfile_options_from_either_source() -> None:
    from lcore.exporters import web_form

    described = web_form.ui_options(SimpleNamespace(_custom_options=launcher_options(), ids=[1]))
    assert [o.dest for o in described] == ["region", "token", "count", "ids", "dry"]
    assert described[1].is_secret and described[0].choices == ("eu", "us")
    assert described[3].is_multiple  # a list value
    # the opts branch's namespace attribute, as a dict by dest (Locust's ui_extra_args_dict)
    later = SimpleNamespace(
        _web_ui_options={"region": {"help_text": "Where", "is_secret": False, "choices": None}},
        _custom_options=launcher_options(),
    )
    (only,) = web_form.ui_options(later)
    assert (only.dest, only.help, only.flag) == ("region", "Where", "--region")
    assert web_form.ui_options(SimpleNamespace()) == []

    async def scenario() -> None:
        runtime = form_runtime()
        opts = {"_custom_options": launcher_options(), "region": "eu", "token": "t0p", "count": 2,
                "ids": [1, 2], "dry": False, "run_time": None}  # fmt: skip
        async with serving(runtime, **opts) as (_, base), aiohttp.ClientSession() as http:
            async with http.get(base + "api/start-form") as r:
                text = await r.text()
                form = json.loads(text)
        assert "t0p" not in text  # the secret's value never leaves the master
        extra = form["extra_options"]
        assert set(extra) == {"region", "token", "count", "ids", "dry"}
        assert extra["token"]["is_secret"] and extra["token"]["has_value"]
        assert extra["ids"]["default_value"] == "1,2" and extra["dry"]["is_bool"]
        assert form["class_picker"] is False and form["available_user_classes"] == []

    run(scenario)


def test_swarm_takes_locusts_fields_options_and_run_time() -> None:
    async def scenario() -> None:
        runtime = form_runtime()
        parsed = SimpleNamespace(region="eu", token="t0p", count=2, ids=[1, 2], dry=False)
        runtime.environment.parsed_options = parsed
        opts = {"_custom_options": launcher_options(), **vars(parsed)}
        async with serving(runtime, **opts) as (server, base), aiohttp.ClientSession() as http:
            bad = [
                ({"region": "mars"}, "--region must be one of eu, us"),
                ({"count": "lots"}, "--count must be a whole number"),
                ({"ids": "1,x"}, "--ids must be whole numbers"),
                ({"run_time": "1x"}, "run_time: valid forms"),
                ({"run_time": "0"}, "run_time must be longer"),
            ]
            for extra, message in bad:
                fields = {"user_count": "1", "spawn_rate": "1", **extra}
                async with http.post(base + "swarm", data=fields) as r:
                    assert r.status == 400 and message in (await r.json())["message"], extra
            assert runtime.state == "ready" and runtime.options_for_workers["region"] == "eu"
            fields = {"user_count": "3", "spawn_rate": "3", "region": "us", "token": "",
                      "count": "7", "ids": "4,5", "dry": "true", "run_time": "1",
                      "user_classes": "Nope"}  # fmt: skip
            async with http.post(base + "swarm", data=fields) as r:
                answer = await r.json()
            assert r.status == 200 and answer["run_time"] == 1, answer
            assert "user_classes" not in answer  # no --class-picker: ignored, as Locust does
            expected = {"region": "us", "token": "t0p", "count": 7, "ids": [4, 5], "dry": True}
            assert runtime.options_for_workers == expected  # an empty secret: unchanged
            assert vars(parsed) == expected and server.options.count == 7
            # as Locust's /swarm, the master's options say what the page started
            assert (server.options.num_users, server.options.spawn_rate) == (3, 3.0)
            assert server.options.run_time == 1
            # the next spawn message carries them to every worker
            async with http.get(base + "api/stats") as r:
                assert (await r.json())["stop_at"] > 0
            await asyncio.wait_for(runtime.wait_stopped(), timeout=10)  # the run time is up
            async with http.get(base + "api/stats") as r:
                assert (await r.json())["stop_at"] is None
            # a run time is cancelled by a stop, and by a new start without one
            async with http.post(base + "swarm", json={"user_count": 1, "spawn_rate": 1, "run_time": "1h"}) as r:
                assert r.status == 200
            async with http.post(base + "api/stop") as r:
                assert r.status == 200
            assert server._run_timer is None

    run(scenario)


def test_class_picker_over_http() -> None:
    async def scenario() -> None:
        runtime = form_runtime(Visitor, Other)
        async with serving(runtime, class_picker=True) as (_, base), aiohttp.ClientSession() as http:
            async with http.get(base + "api/start-form") as r:
                form = await r.json()
            assert form["available_user_classes"] == ["Visitor", "Other"]
            assert form["available_shape_classes"] == ["Default"]
            async with http.post(base + "swarm", data={"user_count": "2", "spawn_rate": "1", "user_classes": "Ghost"}) as r:
                assert r.status == 400 and "Ghost" in (await r.json())["message"]
            async with http.post(base + "swarm", data={"user_count": "2", "spawn_rate": "1", "shape_class": "Nope"}) as r:
                assert r.status == 400
            body = {"user_count": 4, "spawn_rate": 100, "user_classes": ["Other"]}
            async with http.post(base + "swarm", json=body) as r:
                assert (await r.json())["user_classes"] == ["Other"]
            assert runtime.picked_classes == ("Other",)
            await eventually(lambda: runtime.target_user_classes_count == {"Visitor": 0, "Other": 4})
            # while running, no classes in the form keep the pick (as Locust)
            async with http.post(base + "swarm", json={"user_count": 6, "spawn_rate": 100}) as r:
                assert (await r.json())["user_classes"] == ["Other"]
            async with http.get(base + "api/start-form") as r:
                assert (await r.json())["selected_user_classes"] == ["Other"]

    run(scenario)


def test_a_shape_with_common_options_gets_them_from_the_form() -> None:
    from lcore.shape import LoadTestShape

    class FromOptions(LoadTestShape):
        use_common_options = True

        def tick(self) -> tuple[int, float] | None:
            o = self.runner.environment.parsed_options
            return (o.num_users, o.spawn_rate) if o.num_users else None

    async def scenario() -> None:
        runtime = form_runtime()
        async with serving(runtime, num_users=None, spawn_rate=None, run_time=None) as (server, base):
            runtime.environment.parsed_options = server.options
            runtime.pick_shape(FromOptions())
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "api/start-form") as r:
                    assert (await r.json())["hide_common_options"] is False
                fields = {"user_count": "5", "spawn_rate": "5", "run_time": "30s"}
                async with http.post(base + "swarm", data=fields) as r:
                    answer = await r.json()
                assert "FromOptions" in answer["message"], answer
                assert (server.options.num_users, server.options.spawn_rate) == (5, 5.0)
                assert server.options.run_time == 30 and server._run_timer is None  # the shape's
                assert runtime.state == "spawning"  # its ticks run on the master's greenlets
                async with http.post(base + "swarm", data=fields) as r:
                    assert r.status == 409  # a shape runs: stop it first

    run(scenario)
