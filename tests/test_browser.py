"""The status page in a real headless Chromium, driven over the DevTools protocol (aiohttp's
websocket client): start a test with the page's own controls and watch the count rise."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1440,1000",
    "--hide-scrollbars",
]
LOCUSTFILE = """
from locust import HttpUser, task, constant

class Browsing(HttpUser):
    wait_time = constant(0.02)

    @task(3)
    def index(self):
        self.client.get("/")

    @task(1)
    def slow(self):
        self.client.get("/delay/20", name="/delay")

    @task(1)
    def missing(self):
        self.client.get("/status/404", name="/missing")
"""


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is not installed (run-tests.sh installs Debian's chromium as root)")
    pytest.skip("chromium is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def http_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


@pytest.fixture
def chromium() -> Iterator[str]:
    """A headless Chromium with a fresh profile; yields the page target's websocket URL."""
    binary = chromium_binary()
    profile = tempfile.mkdtemp(prefix="lcore-chromium-")
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        wait_for(
            lambda: port_file.exists() and port_file.read_text().strip(), 30, "DevToolsActivePort"
        )
        port = int(port_file.read_text().split()[0])
        targets = wait_for(
            lambda: [
                t
                for t in http_json(f"http://127.0.0.1:{port}/json/list") or []
                if t.get("type") == "page"
            ],
            15,
            "a page target",
        )
        yield targets[0]["webSocketDebuggerUrl"]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """Just enough of the DevTools protocol: commands, JavaScript, clicks, typing, screenshots."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self.ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self.ws.receive(), timeout=30)
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"DevTools connection closed: {message!r}")
            data = json.loads(message.data)
            if data.get("id") == message_id:
                if "error" in data:
                    raise AssertionError(f"{method} failed: {data['error']}")
                return data["result"]

    async def js(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.2)

    async def click(self, element_id: str) -> None:
        box = await self.js(
            f"(() => {{ const r = document.getElementById({element_id!r}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left",
                clickCount=1,
            )  # fmt: skip

    async def type_into(self, element_id: str, text: str) -> None:
        await self.js(f"document.getElementById({element_id!r}).select()")
        await self.send("Input.insertText", text=text)

    async def screenshot(self) -> bytes:
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        result = await self.send(
            "Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip
        )
        return base64.b64decode(result["data"])


AGGREGATED_COUNT = """(() => {
  const row = document.querySelector('#stats-table tr.total td.requests');
  return row ? Number(row.textContent.replace(/,/g, '')) : 0;
})()"""


def test_status_page_starts_a_test_and_shows_it(tmp_path, target, run_lcore, chromium) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(LOCUSTFILE))
    web_port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--processes", "2", "--web-host", "127.0.0.1",
        "--web-port", str(web_port), "--master-bind-port", str(free_port()),
    )  # fmt: skip
    base = f"http://127.0.0.1:{web_port}/"
    wait_for(lambda: (http_json(base + "healthz") or {}).get("workers") == 2, 60, "two workers")

    shots: list[bytes] = []

    async def drive() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(chromium, max_msg_size=0) as ws,
        ):
            page = Page(ws)
            await page.send("Page.enable")
            await page.send("Page.navigate", url=base)
            await page.until(
                "document.getElementById('fig-state')?.textContent === 'ready'", 20, "the page"
            )
            assert await page.js("document.getElementById('btn-start').disabled") is False
            await page.type_into("in-users", "6")
            await page.type_into("in-rate", "6")
            await page.click("btn-start")
            await page.until(
                "['spawning', 'running'].includes(document.getElementById('fig-state').textContent)",
                20,
                "the test to start",
            )
            first = await page.until(AGGREGATED_COUNT, 20, "requests in the table")
            await page.until(f"{AGGREGATED_COUNT} > {first}", 20, "the count to rise")
            assert await page.js("document.getElementById('fig-users').textContent") == "6"
            # the failing endpoint shows in the failures table, the workers in theirs
            await page.until(
                "document.querySelectorAll('#errors-table tbody td.num').length > 0", 20, "failures"
            )
            assert await page.js("document.querySelectorAll('#workers-table tbody tr').length") == 2
            # a few seconds of history, so the screenshot shows the charts drawn
            await page.until(
                "document.querySelectorAll('#chart-rps path.line')[0]?.getAttribute('d')"
                ".split('L').length >= 4",
                30,
                "the charts",
            )
            shots.append(await page.screenshot())
            await page.click("btn-stop")
            await page.until(
                "document.getElementById('fig-state').textContent === 'stopped'", 30, "stopped"
            )

    asyncio.run(drive())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "status_page.png").write_bytes(shots[0])
    assert shots[0].startswith(b"\x89PNG")
    served = sum(target.counts().values())
    stats = http_json(base + "api/stats")
    assert stats["state"] == "stopped"
    assert stats["stats"][-1]["num_requests"] == served > 0
    master.proc.send_signal(signal.SIGTERM)
    assert master.wait(60) in (0, 1), master.output


FORM_LOCUSTFILE = """
import logging
from locust import HttpUser, task, constant, events


@events.init_command_line_parser.add_listener
def _(parser):
    parser.add_argument("--greeting", default="hi", help="What the users say")
    parser.add_argument("--api-key", default="default-key", is_secret=True)


class Alpha(HttpUser):
    wait_time = constant(0.05)

    def on_start(self):
        logging.getLogger("alpha").warning("alpha says %s", self.environment.parsed_options.greeting)

    @task
    def alpha(self):
        o = self.environment.parsed_options
        self.client.get(f"/alpha/{o.greeting}/{o.api_key}", name="alpha")


class Beta(HttpUser):
    wait_time = constant(0.05)

    @task
    def beta(self):
        self.client.get("/beta")
"""


def test_start_form_options_picker_run_time_and_logs(tmp_path, target, run_lcore, chromium) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(FORM_LOCUSTFILE))
    web_port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--processes", "1", "--class-picker", "--web-host",
        "127.0.0.1", "--web-port", str(web_port), "--master-bind-port", str(free_port()),
    )  # fmt: skip
    base = f"http://127.0.0.1:{web_port}/"
    wait_for(lambda: (http_json(base + "healthz") or {}).get("workers") == 1, 60, "a worker")
    shots: list[bytes] = []

    async def drive() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(chromium, max_msg_size=0) as ws,
        ):
            page = Page(ws)
            await page.send("Page.enable")
            await page.send("Page.navigate", url=base)
            await page.until("!!document.getElementById('opt-greeting')", 20, "the options")
            assert await page.js("document.getElementById('opt-api_key').type") == "password"
            assert await page.js("document.getElementById('opt-api_key').value") == ""
            assert await page.js("document.getElementById('opt-greeting').value") == "hi"
            assert await page.js("document.getElementById('picker').hidden") is False
            assert await page.js("document.getElementById('class-Beta').checked") is True
            await page.click("class-Beta")  # untick: only Alpha runs
            await page.type_into("opt-greeting", "bonjour")
            await page.type_into("opt-api_key", "s3cret")
            await page.type_into("in-users", "2")
            await page.type_into("in-rate", "10")
            await page.type_into("in-runtime", "3s")
            await page.click("btn-start")
            await page.until(
                "['spawning', 'running'].includes(document.getElementById('fig-state').textContent)",
                20,
                "the test to start",
            )
            # the worker's warning in the Logs view, tagged with the worker
            await page.until(
                "[...document.querySelectorAll('#logs-table tbody tr')].some(r => "
                "r.textContent.includes('alpha says bonjour') && !r.cells[1].textContent.includes('master'))",
                30,
                "the worker's log line",
            )
            shots.append(await page.screenshot())
            # the run time ends the test by itself
            await page.until(
                "document.getElementById('fig-state').textContent === 'stopped'", 30, "stopped"
            )

    asyncio.run(drive())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "status_page_form.png").write_bytes(shots[0])
    counts = target.counts()
    assert counts.get(("GET", "/alpha/bonjour/s3cret"), 0) > 0, counts
    assert ("GET", "/beta") not in counts
    master.proc.send_signal(signal.SIGTERM)
    assert master.wait(60) in (0, 1), master.output
