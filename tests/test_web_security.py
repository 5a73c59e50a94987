"""The status server against a hostile browser and a hostile network: another site's page asking
for a state change (CSRF), a rebound DNS name (Host), and slow connections that would starve the
port. Real HTTP on loopback."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_web import make_runtime, record, run, serving

from lcore.exporters.web import StatusServer
from lcore.exporters.web_auth import SESSION_COOKIE, Auth
from lcore.exporters.web_guard import LoginThrottle
from lcore.exporters.web_limits import AcceptErrorFilter
from lcore.launcher.options import build_parser, parse_options
from lcore.master import MasterRuntime


def requests_seen(runtime: MasterRuntime) -> int:
    return runtime.stats_merged.total.num_requests


async def status(http: aiohttp.ClientSession, method: str, url: str, **headers: str) -> int:
    async with http.request(method, url, headers=headers, allow_redirects=False) as r:
        await r.read()
        return r.status


# -- CSRF ------------------------------------------------------------------------------------


def test_another_sites_page_cannot_stop_or_reset_but_scripts_can() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        record(runtime, 10)
        async with serving(runtime) as (server, base), aiohttp.ClientSession() as http:
            own = f"http://127.0.0.1:{server.port}"
            img = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
            # what Chromium sends for <img src=http://127.0.0.1:8089/stats/reset>
            assert await status(http, "GET", base + "stats/reset", **img) == 403
            assert await status(http, "HEAD", base + "stats/reset", **img) == 403
            assert await status(http, "GET", base + "stop", **img) == 403
            # an older browser without Sec-Fetch-*: the Referer says where it comes from
            foreign = {"Referer": "http://evil.example/page.html"}
            assert await status(http, "GET", base + "stats/reset", **foreign) == 403
            # another port of the same host is another origin
            other_port = {"Sec-Fetch-Site": "same-site", "Referer": "http://127.0.0.1:3000/"}
            assert await status(http, "GET", base + "stats/reset", **other_port) == 403
            null_origin = {"Origin": "null"}
            for path in ("api/stop", "api/reset", "api/swarm", "swarm"):
                assert await status(http, "POST", base + path, **null_origin) == 403
                assert await status(http, "POST", base + path, **img) == 403
            assert requests_seen(runtime) == 10  # nothing was reset
            # reading stays open to every page (the data is no secret without auth)
            assert await status(http, "GET", base + "api/stats", **img) == 200
            # the page itself, and a user typing the address, and scripts keep working
            assert await status(http, "GET", base + "stop", **{"Sec-Fetch-Site": "none"}) == 200
            mine = {"Sec-Fetch-Site": "same-origin", "Origin": own, "Referer": own + "/"}
            assert await status(http, "POST", base + "api/stop", **mine) == 200
            assert await status(http, "GET", base + "stats/reset") == 200
            assert requests_seen(runtime) == 0
            # Locust 2.x's scripts POST them; from another site's page, refused alike
            record(runtime, 3)
            for path in ("stop", "stats/reset"):
                assert await status(http, "POST", base + path, **img) == 403
            assert requests_seen(runtime) == 3
            assert await status(http, "POST", base + "stop") == 200
            assert await status(http, "POST", base + "stats/reset") == 200
            assert requests_seen(runtime) == 0

    run(scenario)


# -- DNS rebinding -----------------------------------------------------------------------------


def test_a_rebound_name_is_refused_without_auth() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        record(runtime, 10)
        async with serving(runtime) as (server, base), aiohttp.ClientSession() as http:
            port = server.port
            evil = f"rebind.evil.example:{port}"
            rebound = {"Host": evil, "Origin": f"http://{evil}"}
            assert await status(http, "GET", base + "api/stats", Host=evil) == 403
            assert await status(http, "POST", base + "api/swarm", **rebound) == 403
            assert await status(http, "GET", base + "metrics", Host=evil) == 403
            assert runtime.state == "ready"
            # probes by pod IP, or by any name, still see the state
            assert await status(http, "GET", base + "healthz", Host=evil) == 200
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}",
                         f"10.1.2.3:{port}", "localhost"):  # fmt: skip
                assert await status(http, "GET", base + "api/stats", Host=host) == 200, host
        async with (
            serving(runtime, web_allowed_hosts="lcore.internal,.example.org") as (server, base),
            aiohttp.ClientSession() as http,
        ):
            for host in ("lcore.internal:8089", "a.example.org", "example.org"):
                assert await status(http, "GET", base + "api/stats", Host=host) == 200, host
            assert await status(http, "GET", base + "api/stats", Host="evilexample.org") == 403
        async with (
            serving(runtime, web_allowed_hosts="*") as (server, base),
            aiohttp.ClientSession() as http,
        ):
            assert await status(http, "GET", base + "api/stats", Host=evil) == 200

    run(scenario)


def test_with_auth_the_host_is_not_checked() -> None:
    async def scenario() -> None:
        runtime = make_runtime()
        token: dict[str, Any] = {"Authorization": "Bearer s3cret"}
        async with (
            serving(runtime, web_token="s3cret") as (_, base),
            aiohttp.ClientSession() as http,
        ):
            evil = "rebind.evil.example:8089"
            assert await status(http, "GET", base + "api/stats", Host=evil) == 401
            assert await status(http, "GET", base + "api/stats", Host=evil, **token) == 200

    run(scenario)


# -- slow and many connections ---------------------------------------------------------------

SLOW_MASTER = """
import asyncio, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (__LIMIT__, __LIMIT__))
sys.path.insert(0, __TESTS__)
from test_web import make_runtime, options
from lcore.exporters.web import start_web

async def main():
    server = await start_web(make_runtime(), options())
    print(server.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
    await server.close()

asyncio.run(main())
"""


async def slow_client(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    """A slowloris: a request head one line a second, reconnecting soon after it is closed."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
            continue
        opened[0] += 1
        try:
            writer.write(b"GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            while not stop.is_set() and not reader.at_eof():
                await writer.drain()
                await asyncio.sleep(1.0)
                writer.write(b"X-Slow: 1\r\n")
        except OSError:
            pass
        finally:
            writer.close()
        await asyncio.sleep(0.5)


def test_healthz_answers_while_slow_connections_outnumber_the_descriptors(
    tmp_path: Path,
) -> None:
    script = SLOW_MASTER.replace("__LIMIT__", "256").replace(
        "__TESTS__", repr(str(Path(__file__).parent))
    )
    with open(tmp_path / "stderr", "wb") as stderr:  # the child has its own copy
        master = subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert master.stdout is not None
        port = int(master.stdout.readline())

        async def scenario() -> None:
            stop = asyncio.Event()
            opened = [0]
            clients = [asyncio.create_task(slow_client(port, stop, opened)) for _ in range(300)]
            slowest = 0.0
            try:
                await asyncio.sleep(1.0)  # let them pile up
                timeout = aiohttp.ClientTimeout(total=3)
                async with aiohttp.ClientSession(timeout=timeout) as http:
                    end = time.monotonic() + 6.0
                    while time.monotonic() < end:
                        begin = time.monotonic()
                        async with http.get(
                            f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}
                        ) as r:
                            assert r.status == 200 and (await r.json())["status"] == "ok"
                        slowest = max(slowest, time.monotonic() - begin)
                        await asyncio.sleep(0.2)
            finally:
                stop.set()
                await asyncio.gather(*clients, return_exceptions=True)
            assert opened[0] >= 300
            assert slowest < 2.0, slowest

        run(scenario)
    finally:
        assert master.stdin is not None
        master.stdin.close()
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        assert master.stdout is not None
        master.stdout.close()
    errors = (tmp_path / "stderr").read_text()
    assert errors.count("Traceback") <= 1, errors[-3000:]


def test_a_request_head_that_does_not_arrive_in_time_closes_the_connection() -> None:
    async def scenario() -> None:
        server = StatusServer(
            make_runtime(), host="127.0.0.1", port=0, head_timeout=0.5, body_timeout=0.5
        )
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            begin = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed, unanswered
            assert time.monotonic() - begin < 2.0
            writer.close()
            # a slow body too: 408
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST /api/swarm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nuser_count=1"
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readline(), 5.0)
            assert b" 408 " in head, head
            writer.close()
        finally:
            await server.close()

    run(scenario)


def test_accept_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    passed: list[dict[str, Any]] = []
    accept_filter = AcceptErrorFilter(lambda loop, c: passed.append(c), 10.0, lambda: now[0])
    loop = asyncio.new_event_loop()
    try:
        error = {"message": "socket.accept() out of system resource", "exception": OSError(24)}
        with caplog.at_level(logging.ERROR, logger="lcore.exporters.web_limits"):
            for _ in range(1000):
                accept_filter(loop, dict(error))
                now[0] += 0.05  # 50 s in all
            accept_filter(loop, {"message": "something else"})
    finally:
        loop.close()
    assert len(caplog.records) == 5 and "999" not in caplog.text
    assert "199 more" in caplog.text
    assert passed == [{"message": "something else"}]


# -- logins ----------------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_address() -> None:
    async def scenario() -> None:
        now = [0.0]
        throttle = LoginThrottle(limit=5, window=60.0, penalty=30.0, clock=lambda: now[0])
        auth = Auth("ann:pw", None, True)
        server = StatusServer(
            make_runtime(), host="127.0.0.1", port=0, auth=auth, throttle=throttle
        )
        await server.start()
        base = f"http://127.0.0.1:{server.port}/"
        wrong = aiohttp.BasicAuth("ann", "guess")
        right = aiohttp.BasicAuth("ann", "pw")
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(5):
                    async with http.get(base + "api/stats", auth=wrong) as r:
                        assert r.status == 401
                async with http.get(base + "api/stats", auth=right) as r:
                    assert r.status == 429 and r.headers["Retry-After"] == "30"
                async with http.post(
                    base + "login", data={"username": "ann", "password": "pw"}
                ) as r:
                    assert r.status == 429  # the form is throttled alike
                async with http.get(base + "healthz") as r:
                    assert r.status == 200  # probes never are
                now[0] += 31
                async with http.get(base + "api/stats", auth=right) as r:
                    assert r.status == 200
                for _ in range(5):
                    async with http.post(
                        base + "login", data={"username": "ann", "password": "no"}
                    ) as r:
                        assert r.status == 401
                async with http.post(
                    base + "login",
                    data={"username": "ann", "password": "pw"},
                    allow_redirects=False,
                ) as r:
                    assert r.status == 429
        finally:
            await server.close()

    run(scenario)


def test_web_auth_comes_from_the_environment_too(tmp_path: Path) -> None:
    assert "LCORE_WEB_AUTH" in " ".join(build_parser().format_help().split())
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("from locust import User\n")
    environ = {"LCORE_WEB_AUTH": "ann:pw", "HOME": str(tmp_path)}
    options = parse_options(["-f", str(locustfile)], environ)
    assert options.web_auth == "ann:pw"


def test_login_sessions_expire_and_log_out() -> None:
    async def scenario() -> None:
        now = [1000.0]
        auth = Auth("ann:pw", None, True, session_lifetime=3600.0, clock=lambda: now[0])
        server = StatusServer(make_runtime(), host="127.0.0.1", port=0, auth=auth)
        await server.start()
        base = f"http://127.0.0.1:{server.port}/"
        page = {"Accept": "text/html"}
        try:
            # unsafe: a jar that keeps cookies of an IP address (127.0.0.1), as browsers do
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:

                async def log_in() -> str:
                    form = {"username": "ann", "password": "pw"}
                    async with http.post(base + "login", data=form, allow_redirects=False) as r:
                        assert r.status == 302
                        cookie = r.cookies[SESSION_COOKIE]
                        assert cookie["max-age"] == "3600" and cookie["httponly"]
                        return cookie.value

                first = await log_in()
                assert await status(http, "GET", base + "api/stats") == 200
                async with http.get(base + "api/stats") as r:
                    assert (await r.json())["logout"] is True  # the page shows its button
                # past its lifetime the session no longer opens anything
                now[0] += 3600
                assert await status(http, "GET", base + "api/stats") == 401
                assert await status(http, "GET", base, **page) == 302  # to the login form
                second = await log_in()
                assert second != first
                assert await status(http, "GET", base + "api/stats") == 200
                # another site's page cannot log the user out
                assert (
                    await status(http, "POST", base + "logout", **{"Sec-Fetch-Site": "cross-site"})
                    == 403
                )
                assert await status(http, "GET", base + "api/stats") == 200
                async with http.post(base + "logout", allow_redirects=False) as r:
                    assert r.status == 302 and r.headers["Location"] == "/login"
                    assert r.cookies[SESSION_COOKIE].value == ""  # the browser drops it
                assert await status(http, "GET", base + "api/stats") == 401
            # the cookie kept by someone else is dead too: the server forgot the session
            jar = {SESSION_COOKIE: second}
            async with aiohttp.ClientSession(
                cookies=jar, cookie_jar=aiohttp.CookieJar(unsafe=True)
            ) as other:
                assert await status(other, "GET", base + "api/stats") == 401
                # logging out without a session is harmless: back to the form
                assert await status(other, "POST", base + "logout") == 302
        finally:
            await server.close()

    run(scenario)
