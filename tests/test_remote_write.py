"""--prometheus-remote-write: the WriteRequest decoded in memory against the /metrics series,
bearer auth against a receiver in this process, and a real run landing in a real Prometheus
(its remote-write receiver on, basic auth from its web config), queried over its HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import struct
import subprocess
import textwrap
import time
import urllib.parse
from typing import Any

import cramjam
import pytest
from aiohttp import web
from conftest import wait_until
from test_prometheus import EXPECTED, FIXED, USERS, fetch, free_port, recorded_runtime, samples

from lcore.exporters.prometheus import make_registry, render
from lcore.exporters.push import target_labels
from lcore.exporters.remote_write import RemoteWrite

# -- a reader of what was sent (the test's own: the encoder must not check itself) ------------


def _varint(data: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> list[tuple[int, Any]]:
    """(field number, bytes | int | float) of one protobuf message."""
    out, at = [], 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _varint(data, at)
        elif kind == 1:
            value, at = struct.unpack("<d", data[at : at + 8])[0], at + 8
        elif kind == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        else:
            raise AssertionError(f"unexpected wire type {kind}")
        out.append((number, value))
    return out


def decode(body: bytes) -> list[tuple[list[tuple[str, str]], list[tuple[float, int]]]]:
    request = fields(bytes(cramjam.snappy.decompress_raw(body)))
    series = []
    for number, ts in request:
        assert number == 1
        labels, points = [], []
        for part, value in fields(ts):
            if part == 1:
                label = dict(fields(value))
                labels.append((label[1].decode(), label[2].decode()))
            else:
                sample = dict(fields(value))
                points.append((sample.get(1, 0.0), sample.get(2, 0)))
        series.append((labels, points))
    return series


def pushed_series(body: bytes, extra: set[str]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """What was sent, keyed as ``samples()`` keys a scrape, without the labels in ``extra``."""
    out = {}
    for label_list, points in decode(body):
        names = [k for k, _ in label_list]
        assert names == sorted(names) and len(set(names)) == len(names)
        assert all(v for _, v in label_list)  # no empty value
        assert len(points) == 1
        found = dict(label_list)
        name = found.pop("__name__")
        out[(name, frozenset((k, v) for k, v in found.items() if k not in extra))] = points[0][0]
    return out


def test_the_write_request_holds_every_metrics_series_sorted_and_labelled() -> None:
    runtime = recorded_runtime()
    registry = make_registry(runtime)
    labels = {"run_id": "20261201-120000-abcdef", "env": "ci"}
    pusher = RemoteWrite(
        registry, "http://127.0.0.1:1/api/v1/write", labels=lambda: labels, clock=lambda: 1700000000.5
    )
    body = pusher.body()
    for label_list, points in decode(body):
        assert dict(label_list)["run_id"] == "20261201-120000-abcdef"
        assert dict(label_list)["env"] == "ci"
        assert points[0][1] == 1700000000500  # milliseconds
    pushed = pushed_series(body, {"run_id", "env"})
    scraped = samples(render(registry)[0].decode())
    # the same series as a scrape (a label with an empty value being no label)
    expected = {(n, frozenset((k, v) for k, v in ls if v)): v for (n, ls), v in scraped.items()}
    assert set(pushed) == set(expected)
    for key, value in expected.items():
        if key[0].startswith("lcore_"):  # process_* figures move between the two reads
            assert pushed[key] == pytest.approx(value), key
    cart = ("lcore_requests_total", frozenset({("method", "GET"), ("name", "/cart")}))
    assert pushed[cart] == 8


def test_a_series_own_label_wins_over_a_run_label_of_the_same_name() -> None:
    registry = make_registry(recorded_runtime())
    pusher = RemoteWrite(registry, "http://127.0.0.1:1/", labels=lambda: {"name": "run", "env": "ci"})
    pushed = pushed_series(pusher.body(), {"env"})
    assert pushed[("lcore_requests_total", frozenset({("method", "GET"), ("name", "/cart")}))] == 8
    assert pushed[("lcore_users", frozenset({("user_class", "Shopper"), ("name", "run")}))] == 0


async def inline(fn: Any) -> Any:
    """No gevent hub under asyncio.run: the encoding runs right here."""
    return fn()


def test_bearer_token_and_headers_reach_the_receiver() -> None:
    got: list[tuple[dict[str, str], bytes]] = []

    async def write(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=204 if len(got) > 1 else 503)

    async def scenario() -> RemoteWrite:
        app = web.Application()
        app.router.add_post("/api/v1/write", write)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        pusher = RemoteWrite(
            make_registry(recorded_runtime()), f"http://127.0.0.1:{port}/api/v1/write",
            token="t0ken", cpu=inline,
        )  # fmt: skip
        try:
            assert await pusher.push() is False  # a 503: logged, not raised
            assert await pusher.push(final=True) is True  # the final push retries
        finally:
            await pusher.close()
            await runner.cleanup()
        return pusher

    pusher = asyncio.run(scenario())
    assert pusher.pushes == 1 and pusher.failures.failures == 1
    headers, body = got[-1]
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert decode(body)


def test_run_labels_carry_run_id_and_let_labels_replace_job() -> None:
    runtime = recorded_runtime()
    given = [("env", "ci"), ("job", "checkout"), ("build-id", "7"), ("1st", "a"), ("__x", "b"), ("run_id", "mine")]
    labels = target_labels(runtime, given)
    assert labels["run_id"] == runtime.run_uid and labels["job"] == "checkout"
    assert labels["env"] == "ci" and labels["instance"]
    # any --label key becomes a valid label name (Prometheus refuses a whole write otherwise)
    assert (labels["build_id"], labels["_1st"], labels["label__x"]) == ("7", "a", "b")


# -- a real Prometheus -----------------------------------------------------------------------


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is not installed (run-tests.sh installs Debian's prometheus)")
        pytest.skip("prometheus is not installed")
    return path


@pytest.mark.integration
def test_a_run_lands_in_a_real_prometheus_with_the_requests_the_target_served(
    tmp_path, target, run_lcore
) -> None:
    import bcrypt

    binary = prometheus_binary()
    (tmp_path / "prometheus.yml").write_text("global:\n  scrape_interval: 15s\n")
    hashed = bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  pusher: {hashed}\n")
    prom_port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:  # the child has its own copy
        prom = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--web.config.file={tmp_path / 'web.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    auth = {"Authorization": "Basic cHVzaGVyOnMzY3JldC1wdw=="}  # pusher:s3cret-pw
    api = f"http://127.0.0.1:{prom_port}/api/v1/"
    try:
        wait_until(lambda: fetch(f"http://127.0.0.1:{prom_port}/-/ready", auth)[0] == 200, 60, 0.1)
        lf = tmp_path / "locustfile.py"
        lf.write_text(textwrap.dedent(FIXED))
        started = time.time()
        proc = run_lcore(
            "-f", str(lf), "-H", target.url, "--headless", "--processes", "2", "-u", str(USERS),
            "-r", str(USERS), "-t", "4s", "--no-web", "--stats-interval", "0.5",
            "--out", f"prometheus-rw=http://pusher:s3cret-pw@127.0.0.1:{prom_port}/api/v1/write",
            "--label", "env=ci", "--push-interval", "1",
        )  # fmt: skip
        assert proc.wait(60) in (0, 1), proc.output  # 1: /fail failed, as intended
        served = sum(target.counts().values())
        assert served == EXPECTED

        def query(promql: str) -> list[dict[str, Any]] | None:
            status, body = fetch(api + "query?query=" + urllib.parse.quote(promql), auth)
            return json.loads(body)["data"]["result"] if status == 200 else None

        result = wait_until(lambda: query('sum by (run_id, env, job) (lcore_requests_total)'), 30)
        (only,) = result
        assert float(only["value"][1]) == served  # the final push: every request the target served
        assert only["metric"]["env"] == "ci" and only["metric"]["job"] == "lcore"
        assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", only["metric"]["run_id"])
        failed = query('lcore_request_failures_total{name="/fail"}')
        assert failed and float(failed[0]["value"][1]) == USERS
        buckets = query('lcore_response_time_seconds_bucket{name="/slow",le="+Inf"}')
        assert buckets and float(buckets[0]["value"][1]) == USERS * 10
        # pushed while it ran too, not only at the end: more than one sample per series
        points = query(f'count_over_time(lcore_requests_total{{name="/slow"}}[{int(time.time() - started) + 5}s])')
        assert points and float(points[0]["value"][1]) >= 2
        status, _ = fetch(api + "query?query=up")
        assert status == 401  # the receiver really asked for the password
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait(timeout=10)
    assert "s3cret-pw" not in proc.output


def test_a_receiver_that_never_answers_does_not_hold_up_the_loop() -> None:
    async def scenario() -> tuple[bool, float, float]:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await asyncio.sleep(30)  # reads nothing, answers nothing
            finally:  # cancelled when the test's loop ends: the connection is closed with it
                writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pusher = RemoteWrite(
            make_registry(recorded_runtime()), f"http://127.0.0.1:{port}/api/v1/write",
            timeout=1.0, cpu=inline,
        )  # fmt: skip
        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        ticking = asyncio.ensure_future(ticker())
        started = time.monotonic()
        try:
            ok = await pusher.push()
        finally:
            took = time.monotonic() - started
            done.set()
            await ticking
            await pusher.close()
            server.close()
        gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
        return ok, took, max(gaps)

    ok, took, worst_gap = asyncio.run(scenario())
    assert ok is False and 0.9 <= took < 5, took  # given up at its timeout, logged, not raised
    assert worst_gap < 0.5, worst_gap  # the loop went on meanwhile


def test_an_output_that_raises_never_stops_the_pushes(caplog) -> None:
    from lcore.exporters.push import PeriodicPusher

    three = asyncio.Event()

    class Broken:
        name = "broken output"
        calls = 0

        async def push(self, final: bool = False) -> bool:
            Broken.calls += 1
            if Broken.calls == 3:
                three.set()
            raise RuntimeError("a bug in an encoder")

        async def close(self) -> None:
            pass

    async def scenario() -> None:
        pusher = PeriodicPusher([Broken()], interval=0.01)
        running = asyncio.ensure_future(pusher.run())
        await asyncio.wait_for(three.wait(), 10)
        await pusher.close(running)
        assert running.done() and running.exception() is None

    asyncio.run(scenario())
    assert Broken.calls >= 4  # three rounds, the final push
    assert "broken output: a push raised" in caplog.text and "the final push failed" in caplog.text
