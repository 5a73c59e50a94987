"""The status server against a hostile browser and a hostile network: another site's page asking
for a state change (CSRF), a rebound DNS name (Host), and slow connections that would starve the
port. Real HTTP on loopback."""

from __future__ import annotations

from typing import Any

import aiohttp
from test_web import make_runtime, record, run, serving

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
