"""lcore.http against real loopback sockets: the embedded Target in a thread, and a few
hand-written servers for what the Target never does (dropping idle connections, HTTP/1.0)."""

from __future__ import annotations

import base64
import errno
import json
import pickle
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import gevent
import pytest
import requests

from lcore.event import RequestEventHook
from lcore.exception import CatchResponseError, LocustError, ResponseError, StopUser
from lcore.http import (
    CaseInsensitiveDict,
    CookieJar,
    FastHttpSession,
    HTTPError,
    HttpSession,
    Response,
    ResponseContextManager,
    TooManyRedirects,
)
from lcore.stats import error_text
from lcore.target import Target
from lcore.user_lifecycle import UserLifecycle


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with Target() as t:
        yield t


@pytest.fixture(scope="module")
def other_target() -> Iterator[Target]:
    with Target() as t:
        yield t


class Recorded:
    """A RequestEventHook whose recorder collects what it is given."""

    def __init__(self) -> None:
        self.hook = RequestEventHook()
        self.calls: list[tuple[str, str, float, int, Any]] = []
        self.hook.recorder = lambda *args: self.calls.append(args)

    @property
    def last(self) -> tuple[str, str, float, int, Any]:
        return self.calls[-1]


@pytest.fixture
def rec() -> Recorded:
    return Recorded()


@pytest.fixture
def session(target: Target, rec: Recorded) -> Iterator[HttpSession]:
    s = HttpSession(target.url, rec.hook)
    yield s
    s.close()


SessionFactory = Callable[..., HttpSession]


@pytest.fixture
def new_session() -> Iterator[SessionFactory]:
    """``HttpSession(...)`` for a test's own sessions; each is closed when the test ends (its
    keep-alive connections with it)."""
    made: list[HttpSession] = []

    def make(*args: Any, cls: type[HttpSession] = HttpSession, **kwargs: Any) -> HttpSession:
        made.append(cls(*args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeUser:
    def __init__(self, context: dict[str, Any] | None = None) -> None:
        self._lifecycle = UserLifecycle()
        self._context = context or {}

    def context(self) -> dict[str, Any]:
        return self._context


# -- successes and failures ------------------------------------------------------------


def test_success_is_recorded_with_the_fast_path(session: HttpSession, rec: Recorded) -> None:
    response = session.get("/")
    assert response.status_code == 200
    assert response.ok
    assert response.error is None
    assert response.text == "lcore target\n"
    assert response.content == b"lcore target\n"
    assert response.url == session.base_url + "/"
    assert len(rec.calls) == 1
    method, name, rt, length, exc = rec.last
    assert (method, name, length, exc) == ("GET", "/", 13, None)
    assert isinstance(rt, float)
    assert 0 < rt < 10_000


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (404, "404 Client Error: Not Found for url: /status/404"),
        (500, "500 Server Error: Internal Server Error for url: /status/500"),
    ],
)
def test_error_status_is_a_failure_not_an_exception(
    session: HttpSession, rec: Recorded, code: int, text: str
) -> None:
    response = session.get(f"/status/{code}")
    assert response.status_code == code
    assert not response.ok
    assert isinstance(response.error, HTTPError)
    assert str(response.error) == text
    assert rec.last[4] is response.error
    assert rec.last[3] == len(response.content)
    with pytest.raises(HTTPError):
        response.raise_for_status()


def test_3xx_without_following_is_a_success(session: HttpSession, rec: Recorded) -> None:
    response = session.get("/redirect/1", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "/"
    assert rec.last[4] is None


def test_refused_connection_is_a_failure(new_session: SessionFactory, rec: Recorded) -> None:
    session = new_session(f"http://127.0.0.1:{closed_port()}", rec.hook)
    response = session.get("/nothing")
    assert response.status_code == 0
    assert not response.ok
    assert isinstance(response.error, ConnectionRefusedError)
    assert "Connection refused" in repr(response.error)
    assert response.text == ""
    assert rec.last[0:2] == ("GET", "/nothing")
    assert rec.last[3] == 0
    assert rec.last[4] is response.error
    with pytest.raises(ConnectionRefusedError):
        response.raise_for_status()
    # as Locust's HttpUser raises it too (requests'), with FastHttpUser's name in the reports
    with pytest.raises(requests.exceptions.ConnectionError):
        response.raise_for_status()
    assert isinstance(response.error, OSError) and response.error.errno == errno.ECONNREFUSED
    copied = pickle.loads(pickle.dumps(response.error))  # the combined class lives in no module
    assert isinstance(copied, ConnectionRefusedError) and repr(copied) == repr(response.error)
    assert error_text(response.error) == "ConnectionRefusedError(111, 'Connection refused')"


def test_timeout_is_a_failure_and_the_connection_is_not_reused(
    session: HttpSession, rec: Recorded, target: Target
) -> None:
    start = time.perf_counter()
    response = session.get("/delay/3000", timeout=0.2)
    elapsed = time.perf_counter() - start
    assert response.status_code == 0
    assert isinstance(response.error, TimeoutError)
    assert isinstance(response.error, requests.exceptions.ReadTimeout)
    assert isinstance(response.error.original, socket.timeout)  # FastHttpUser's RetriesExceeded
    assert error_text(response.error) == error_text(response.error.original)
    assert elapsed < 2.5
    assert 150 <= rec.last[2] < 2500
    # The late answer must not be taken for the next request's.
    assert session.get("/json").json()["ok"] is True


def test_network_timeout_of_the_session(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    session = new_session(target.url, rec.hook, network_timeout=0.2)
    response = session.get("/delay/3000")
    assert isinstance(response.error, TimeoutError)


def test_response_time_covers_the_wait(session: HttpSession, rec: Recorded) -> None:
    session.get("/delay/200")
    assert 190 <= rec.last[2] < 5000


def test_name_groups_urls(session: HttpSession, rec: Recorded) -> None:
    for item in (1, 2, 3):
        session.get(f"/item/{item}?x=1", name="/item/[id]")
    assert {call[1] for call in rec.calls} == {"/item/[id]"}
    session.get("/plain?q=1")
    assert rec.last[1] == "/plain?q=1"
    with session.rename_request("/renamed"):
        session.get("/a")
        session.get("/b", name="/explicit")
    assert [call[1] for call in rec.calls[-2:]] == ["/renamed", "/explicit"]
    session.get("/c")
    assert rec.last[1] == "/c"


def test_status_error_text_uses_the_name(session: HttpSession) -> None:
    response = session.get("/status/404?id=7", name="/status/[x]")
    assert str(response.error) == "404 Client Error: Not Found for url: /status/[x]"


# -- what is sent ------------------------------------------------------------------------


def echo(response: Response) -> dict[str, Any]:
    assert response.status_code == 200, response.error
    return response.json()  # type: ignore[no-any-return]


def test_params_json_data_and_headers(session: HttpSession) -> None:
    doc = echo(session.get("/echo", params={"a": "1", "b": ["x", "y"]}))
    assert doc["query"] == "a=1&b=x&b=y"
    doc = echo(session.get("/echo?z=0", params=[("a", "b c")]))
    assert doc["query"] == "z=0&a=b+c"
    doc = echo(session.post("/echo", json={"k": [1, 2]}))
    assert doc["method"] == "POST"
    assert json.loads(doc["body"]) == {"k": [1, 2]}
    assert doc["headers"]["Content-Type"] == "application/json"
    doc = echo(session.put("/echo", data={"f": "v w"}))
    assert doc["body"] == "f=v+w"
    assert doc["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    doc = echo(session.patch("/echo", data="text ü"))
    assert doc["body"] == "text ü"
    assert doc["headers"]["Content-Length"] == str(len("text ü".encode()))
    doc = echo(session.post("/echo", data=b"\x00raw", headers={"Content-Type": "x/y"}))
    assert doc["headers"]["Content-Type"] == "x/y"
    doc = echo(session.post("/echo"))
    assert doc["headers"]["Content-Length"] == "0"
    doc = echo(session.delete("/echo", headers={"X-One": "1", "user-agent": "mine"}))
    assert doc["method"] == "DELETE"
    assert doc["headers"]["X-One"] == "1"
    assert doc["headers"]["user-agent"] == "mine"
    assert "User-Agent" not in doc["headers"]
    doc = echo(session.options("/echo", headers={"Accept": None}))
    assert doc["method"] == "OPTIONS"
    assert "Accept" not in doc["headers"]


def test_default_headers_and_session_headers(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    session = new_session(target.url, rec.hook, default_headers={"X-Default": "d"})
    doc = echo(session.get("/echo"))
    assert doc["headers"]["Host"] == f"127.0.0.1:{target.port}"
    assert doc["headers"]["User-Agent"].startswith("lcore/")
    assert doc["headers"]["Accept-Encoding"] == "gzip, deflate"
    assert doc["headers"]["X-Default"] == "d"
    session.headers.update({"Authorization": "Bearer t"})
    session.headers["x-default"] = "changed"
    doc = echo(session.get("/echo"))
    assert doc["headers"]["Authorization"] == "Bearer t"
    assert doc["headers"]["x-default"] == "changed"
    del session.headers["Authorization"]
    assert "Authorization" not in echo(session.get("/echo"))["headers"]


def test_basic_auth(new_session: SessionFactory, target: Target, session: HttpSession, rec: Recorded) -> None:
    expected = "Basic " + base64.b64encode(b"user:pa ss").decode()
    doc = echo(session.get("/echo", auth=("user", "pa ss")))
    assert doc["headers"]["Authorization"] == expected
    session.auth = ("user", "pa ss")
    assert echo(session.get("/echo"))["headers"]["Authorization"] == expected
    with_credentials = new_session(f"http://user:pa%20ss@127.0.0.1:{target.port}", rec.hook)
    assert with_credentials.auth == ("user", "pa ss")
    assert echo(with_credentials.get("/echo"))["headers"]["Authorization"] == expected


def test_files_are_sent_as_multipart(session: HttpSession) -> None:
    doc = echo(
        session.post(
            "/echo",
            data={"field": "value"},
            files={"upload": ("report.csv", b"a,b\n1,2\n", "text/csv")},
        )
    )
    assert doc["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    body = doc["body"]
    assert 'name="field"\r\n\r\nvalue' in body
    assert 'filename="report.csv"' in body
    assert "Content-Type: text/csv\r\n\r\na,b\n1,2\n" in body


def test_base_url_with_a_path_prefix(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    session = new_session(f"{target.url}/api/", rec.hook)
    session.get("/prefixed")
    assert target.counts()[("GET", "/api/prefixed")] == 1
    assert rec.last[1] == "/api/prefixed"  # HttpSession's name: the path sent
    fast = new_session(f"{target.url}/api/", rec.hook, cls=FastHttpSession)
    fast.get("/prefixed")
    assert rec.last[1] == "/prefixed"  # FastHttpSession's: the URL as given


def test_requests_are_named_as_each_of_locusts_clients_names_them(
    new_session: SessionFactory, target: Target, other_target: Target, rec: Recorded
) -> None:
    """Locust 2.47, measured: HttpSession names a request by the first hop's path_url,
    FastHttpSession by the URL as passed."""
    plain = new_session(target.url, rec.hook)
    fast = new_session(target.url, rec.hook, cls=FastHttpSession)
    cases = [
        ((f"{other_target.url}/json?b=2",), {}, "/json?b=2", f"{other_target.url}/json?b=2"),
        (("/json",), {"params": {"a": "1"}}, "/json?a=1", "/json"),
        (("/redirect/1",), {}, "/redirect/1", "/redirect/1"),
        (("/json",), {"name": "mine"}, "mine", "mine"),
    ]
    for args, kwargs, plain_name, fast_name in cases:
        plain.get(*args, **kwargs)
        assert rec.last[1] == plain_name, args
        fast.get(*args, **kwargs)
        assert rec.last[1] == fast_name, args
    with plain.rename_request("grouped"):
        plain.get("/json?id=7")
    assert rec.last[1] == "grouped"


def test_unsafe_characters_in_the_path_are_quoted(session: HttpSession, target: Target) -> None:
    assert echo(session.get("/echo", params={"q": "ä"}))["args"] == {"q": "ä"}
    session.get("/unsafe/ä b")
    assert target.counts()[("GET", "/unsafe/%C3%A4%20b")] == 1


def test_no_base_url_needs_absolute_urls(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    session = new_session(None, rec.hook)
    with pytest.raises(LocustError):
        session.get("/")
    assert session.get(f"{target.url}/json").status_code == 200


@pytest.mark.parametrize(
    ("base_url", "error"),
    [
        ("example.org", requests.exceptions.MissingSchema),
        ("telnet://127.0.0.1", requests.exceptions.InvalidSchema),
        ("http://\x94", requests.exceptions.InvalidURL),
        ("http://", requests.exceptions.InvalidURL),
    ],
)
def test_a_bad_base_url_raises_out_of_each_request_as_requests_does(
    new_session: SessionFactory, rec: Recorded, base_url: str, error: type[Exception]
) -> None:
    session = new_session(base_url, rec.hook)  # as Locust's HttpSession: made, then each call raises
    raised = []
    for _ in range(3):
        with pytest.raises(error) as info:
            session.get("/")
        raised.append(info.value)
    assert rec.calls == []  # a locustfile bug, not a failed request
    # a fresh exception each time: one re-raised object would grow its traceback every call
    assert len({id(e) for e in raised}) == 3
    assert all(len(list(_frames(e.__traceback__))) < 10 for e in raised)


def _frames(tb: Any) -> Iterator[Any]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_an_error_status_is_requests_http_error(session: HttpSession) -> None:
    response = session.get("/status/404")
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        response.raise_for_status()
    assert raised.value.response is response  # requests' e.response.status_code
    assert raised.value.response.status_code == 404
    assert repr(response.error).startswith("HTTPError('404 Client Error")


# -- what is received --------------------------------------------------------------------


def test_response_attributes(session: HttpSession) -> None:
    response = session.get("/json")
    assert response.reason == "OK"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["Content-Type"] == "application/json"
    assert "CONTENT-LENGTH" in response.headers
    assert response.encoding is None
    assert response.json()["message"] == "hello from lcore"
    assert response.elapsed.total_seconds() * 1000 == pytest.approx(
        response.response_time, abs=0.01
    )
    assert repr(response) == "<Response [200]>"
    assert session.get("/status/404").reason == "Not Found"


def test_head_204_and_304_have_no_body(session: HttpSession, rec: Recorded) -> None:
    response = session.head("/bytes/5000")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "5000"
    assert rec.last[3] == 0
    for code in (204, 304):
        response = session.get(f"/status/{code}")
        assert response.status_code == code
        assert response.content == b""
        assert response.error is None
    # All on one connection: no stray body confused the framing.
    assert session.get("/").text == "lcore target\n"


def test_chunked_and_large_bodies(session: HttpSession, rec: Recorded) -> None:
    response = session.get("/chunked?chunks=500")
    assert response.text.splitlines() == [f"chunk {i}" for i in range(500)]
    assert rec.last[3] == len(response.content)
    response = session.get("/bytes/3000000")
    assert len(response.content) == 3_000_000
    assert rec.last[3] == 3_000_000


def test_gzip_and_deflate_are_decoded_on_access(session: HttpSession, rec: Recorded) -> None:
    response = session.get("/gzip")
    wire_length = rec.last[3]
    assert response.json() == {"gzipped": True, "method": "GET"}
    assert wire_length != len(response.content)
    assert session.get("/deflate").json() == {"deflated": True, "method": "GET"}


def test_interim_answers_are_skipped(session: HttpSession) -> None:
    response = session.get("/status/103")
    assert response.status_code == 200
    assert response.text == "after interim\n"


# -- redirects -----------------------------------------------------------------------


def test_redirects_are_followed(session: HttpSession, rec: Recorded, target: Target) -> None:
    before = target.counts()
    response = session.get("/redirect/3")
    assert response.status_code == 200
    assert response.text == "lcore target\n"
    assert [r.status_code for r in response.history] == [302, 302, 302]
    assert response.url == target.url + "/"
    assert len(rec.calls) == 1
    assert rec.last[1] == "/redirect/3"
    after = target.counts()
    for path in ("/redirect/3", "/redirect/2", "/redirect/1", "/"):
        assert after.get(("GET", path), 0) == before.get(("GET", path), 0) + 1


def test_redirect_method_rules(session: HttpSession) -> None:
    doc = echo(session.post("/redirect-to?url=/echo&status=303", data=b"gone"))
    assert (doc["method"], doc["body"]) == ("GET", "")
    assert "Content-Type" not in doc["headers"]
    doc = echo(session.post("/redirect-to?url=/echo&status=302", data=b"gone"))
    assert doc["method"] == "GET"
    doc = echo(session.post("/redirect-to?url=/echo&status=307", data=b"kept"))
    assert (doc["method"], doc["body"]) == ("POST", "kept")
    doc = echo(session.put("/redirect-to?url=/echo&status=308", data=b"kept"))
    assert (doc["method"], doc["body"]) == ("PUT", "kept")


def test_too_many_redirects(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    session = new_session(target.url, rec.hook, max_redirects=2)
    response = session.get("/redirect/5")
    assert response.status_code == 302
    assert isinstance(response.error, TooManyRedirects)
    assert rec.last[4] is response.error


def test_redirect_to_another_host_drops_credentials(
    session: HttpSession, other_target: Target
) -> None:
    elsewhere = f"http://localhost:{other_target.port}/echo"
    response = session.get(
        f"/redirect-to?url={elsewhere}", headers={"Authorization": "secret", "X-Keep": "1"}
    )
    doc = echo(response)
    assert doc["headers"]["Host"] == f"localhost:{other_target.port}"
    assert doc["headers"]["X-Keep"] == "1"
    assert "Authorization" not in doc["headers"]


# -- absolute URLs and connections ---------------------------------------------------------


def test_absolute_urls_get_their_own_pool(
    session: HttpSession, rec: Recorded, target: Target, other_target: Target
) -> None:
    other_target.reset()
    url = f"{other_target.url}/json?x=1"
    for _ in range(3):
        assert session.get(url).status_code == 200
    assert rec.last[1] == "/json?x=1"
    assert other_target.counts() == {("GET", "/json"): 3}
    assert other_target.connections == 1
    assert session.get("/").status_code == 200


def test_keep_alive_reuses_one_connection(new_session: SessionFactory, rec: Recorded) -> None:
    with Target() as t:
        session = new_session(t.url, rec.hook)
        for i in range(20):
            session.get(f"/n/{i}")
        session.post("/echo", json={"a": 1})
        session.get("/chunked")
        session.head("/")
        assert t.total == 23
        assert t.connections == 1
        # A server-side close costs one new connection, and is not a failure.
        assert session.get("/close").error is None
        assert session.get("/").error is None
        assert t.connections == 2
        assert all(call[4] is None for call in rec.calls)


def test_concurrent_greenlets_share_a_session_within_its_limit(new_session: SessionFactory, rec: Recorded) -> None:
    with Target() as t:
        session = new_session(t.url, rec.hook, concurrency=2)
        start = time.perf_counter()
        jobs = [gevent.spawn(session.get, "/delay/150") for _ in range(6)]
        gevent.joinall(jobs, raise_error=True)
        elapsed = time.perf_counter() - start
        assert all(job.value.status_code == 200 for job in jobs)
        assert t.connections == 2
        # Three rounds of two: at least 450 ms, well below six sequential rounds.
        assert 0.44 <= elapsed < 5.0
        session.close()


# -- cookies ---------------------------------------------------------------------------


def test_cookies_are_kept_per_session_and_host(
    new_session: SessionFactory, session: HttpSession, target: Target, other_target: Target, rec: Recorded
) -> None:
    response = session.get("/cookies/set?a=1&b=two")
    assert response.cookies == {"a": "1", "b": "two"}
    assert session.cookies.get("a") == "1"
    assert echo(session.get("/cookies"))["cookies"] == {"a": "1", "b": "two"}
    # Another host (same port rules aside) does not see them; another session neither.
    assert echo(session.get(f"http://localhost:{other_target.port}/cookies"))["cookies"] == {}
    fresh = new_session(target.url, rec.hook)
    assert echo(fresh.get("/cookies"))["cookies"] == {}
    # Per-request cookies add to the jar's, without being stored.
    doc = echo(session.get("/cookies", cookies={"c": "3"}))
    assert doc["cookies"] == {"a": "1", "b": "two", "c": "3"}
    assert "c" not in session.cookies
    # Cookies set by hand go to every host.
    session.cookies["hand"] = "made"
    doc = echo(session.get(f"http://localhost:{other_target.port}/cookies"))
    assert doc["cookies"] == {"hand": "made"}
    session.cookies.clear()
    assert echo(session.get("/cookies"))["cookies"] == {}


def test_cookie_jar_rules() -> None:
    jar = CookieJar()
    jar.store("example.org", "/shop/cart", "sid=1; Path=/shop; HttpOnly")
    jar.store("example.org", "/", "theme=dark")
    jar.store("api.example.org", "/", "wide=1; Domain=example.org")
    jar.store("example.org", "/", "evil=1; Domain=other.org")
    jar.store("example.org", "/", "secret=1; Secure")
    assert jar.header_for("example.org", "/shop/item", False) == "sid=1; theme=dark; wide=1"
    assert jar.header_for("example.org", "/shopping", False) == "theme=dark; wide=1"
    assert "evil" not in jar
    assert "wide=1" in jar.header_for("www.example.org", "/", False)
    assert jar.header_for("other.org", "/", False) == ""
    assert "secret=1" in jar.header_for("example.org", "/", True)
    jar.store("example.org", "/", "theme=gone; Max-Age=0")
    assert "theme" not in jar.header_for("example.org", "/", False)
    jar.store("example.org", "/", "old=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    assert "old" not in jar
    jar.store("example.org", "/", "brief=1; Max-Age=1000")
    assert jar["brief"] == "1"
    del jar["brief"]
    with pytest.raises(KeyError):
        jar["brief"]
    assert len(jar) == 3  # sid, wide, secret


# -- catch_response ----------------------------------------------------------------------


def test_catch_response_success_overrides_an_error_status(
    session: HttpSession, rec: Recorded
) -> None:
    with session.get("/status/404", catch_response=True) as response:
        assert isinstance(response, ResponseContextManager)
        assert isinstance(response, Response)
        assert response.status_code == 404
        assert rec.calls == []  # recording waits for the block to end
        response.success()
    assert rec.calls == [("GET", "/status/404", rec.last[2], 14, None)]


def test_catch_response_failure_with_a_message_or_exception(
    session: HttpSession, rec: Recorded
) -> None:
    with session.get("/json", catch_response=True) as response:
        if response.json()["ok"]:
            response.failure("not what I wanted")
    exc = rec.last[4]
    assert isinstance(exc, CatchResponseError)
    assert str(exc) == "not what I wanted"
    error = ValueError("bad value")
    with session.get("/json", catch_response=True) as response:
        response.failure(error)
    assert rec.last[4] is error


def test_catch_response_without_a_verdict_follows_the_status(
    session: HttpSession, rec: Recorded
) -> None:
    with session.get("/json", catch_response=True):
        pass
    assert rec.last[4] is None
    with session.get("/status/500", name="five", catch_response=True):
        pass
    assert str(rec.last[4]) == "500 Server Error: Internal Server Error for url: five"
    assert len(rec.calls) == 2


def test_catch_response_response_error_inside_is_a_recorded_failure(
    session: HttpSession, rec: Recorded
) -> None:
    with session.get("/json", catch_response=True) as response:
        raise ResponseError("checked and refused")
    assert str(rec.last[4]) == "checked and refused"
    with session.get("/status/404", catch_response=True) as response:
        response.raise_for_status()
    assert isinstance(rec.last[4], HTTPError)
    assert len(rec.calls) == 2


def test_catch_response_other_exceptions_propagate_unrecorded(
    session: HttpSession, rec: Recorded
) -> None:
    with pytest.raises(KeyError), session.get("/json", catch_response=True) as response:
        response.json()["missing"]
    assert rec.calls == []
    with pytest.raises(StopUser), session.get("/json", catch_response=True):
        raise StopUser()
    assert rec.calls == []


def test_catch_response_verdict_then_exception_records_and_propagates(
    session: HttpSession, rec: Recorded
) -> None:
    def task() -> None:
        with session.get("/json", catch_response=True) as response:
            response.success()
            raise RuntimeError("later")

    with pytest.raises(RuntimeError):
        task()
    assert len(rec.calls) == 1
    assert rec.last[4] is None


def test_catch_response_verdict_needs_the_with_block(session: HttpSession) -> None:
    response = session.get("/json", catch_response=True)
    with pytest.raises(LocustError):
        response.success()
    with pytest.raises(LocustError):
        response.failure("x")


def test_catch_response_on_a_refused_connection(new_session: SessionFactory, rec: Recorded) -> None:
    session = new_session(f"http://127.0.0.1:{closed_port()}", rec.hook)
    with session.get("/", catch_response=True) as response:
        assert response.status_code == 0
    assert isinstance(rec.last[4], ConnectionRefusedError)


# -- listeners, context, stop ----------------------------------------------------------


def test_listeners_get_the_full_event_and_the_recorder_still_runs(
    new_session: SessionFactory, target: Target, rec: Recorded
) -> None:
    events: list[dict[str, Any]] = []
    rec.hook.add_listener(lambda **kw: events.append(kw))
    user = FakeUser({"tenant": "a", "shared": "user"})
    session = new_session(target.url, rec.hook, user=user)
    before = time.time()
    response = session.get("/status/404", name="n", context={"shared": "request"})
    assert len(rec.calls) == 1
    assert rec.last[1] == "n"
    (event,) = events
    assert event["request_type"] == "GET"
    assert event["name"] == "n"
    assert event["response"] is response
    assert event["exception"] is response.error
    assert event["response_length"] == 14
    assert event["response_time"] == rec.last[2]
    assert event["context"] == {"tenant": "a", "shared": "request"}
    assert event["url"] == f"{target.url}/status/404"
    assert before - 1 <= event["start_time"] <= time.time()
    meta = response.request_meta
    assert meta["name"] == "n"
    assert meta["context"] == {"tenant": "a", "shared": "request"}


def test_listeners_see_catch_response_verdicts(session: HttpSession, rec: Recorded) -> None:
    events: list[dict[str, Any]] = []
    rec.hook.add_listener(lambda **kw: events.append(kw))
    with session.get("/status/404", catch_response=True, context={"k": 1}) as response:
        response.success()
    assert events[0]["exception"] is None
    assert events[0]["context"] == {"k": 1}
    assert len(rec.calls) == 1


def test_no_recorder_and_no_listener_is_fine(new_session: SessionFactory, target: Target) -> None:
    session = new_session(target.url, RequestEventHook())
    assert session.get("/").status_code == 200


def test_a_stopping_user_stops_before_its_next_request(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    user = FakeUser()
    session = new_session(target.url, rec.hook, user=user)
    session.get("/")
    user._lifecycle.request_stop(requests_too=True)
    before = target.total
    with pytest.raises(StopUser):
        session.get("/")
    with pytest.raises(StopUser):
        session.post("/echo", json={})
    assert target.total == before
    assert len(rec.calls) == 1


def test_an_in_flight_request_finishes_when_the_user_is_told_to_stop(
    new_session: SessionFactory, target: Target, rec: Recorded
) -> None:
    user = FakeUser()
    session = new_session(target.url, rec.hook, user=user)
    job = gevent.spawn(session.get, "/delay/200")
    gevent.sleep(0.05)
    user._lifecycle.request_stop(requests_too=True)
    response = job.get(timeout=10)
    assert response.status_code == 200
    assert rec.last[4] is None


# -- connections the Target does not exercise ---------------------------------------------


class LoopbackServer:
    """Listens on loopback and serves each connection (``_serve``) in a thread of its own."""

    def __init__(self) -> None:
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()


class ScriptedServer(LoopbackServer):
    """Accepts connections and answers each request with ``answer(n)`` (n counts requests
    over all connections); ``close_after`` closes a connection after that many answers."""

    def __init__(
        self,
        answer: Callable[[int], bytes],
        close_after: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        self.close_after = close_after
        self.tls = tls
        self.requests = 0
        super().__init__()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn:
            buf = b""
            answered = 0
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                if b"content-length:" in head.lower():
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    buf = buf[length:]
                self.requests += 1
                conn.sendall(self.answer(self.requests))
                answered += 1
                if self.close_after is not None and answered >= self.close_after:
                    conn.shutdown(socket.SHUT_RDWR)
                    return


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_an_idle_connection_closed_by_the_server_is_replaced(new_session: SessionFactory, rec: Recorded) -> None:
    server = ScriptedServer(lambda n: OK, close_after=1)
    try:
        session = new_session(server.url, rec.hook)
        assert session.get("/").text == "ok"
        # Immediately: the closed socket is noticed when the request finds no answer,
        # and an idempotent request is sent again on a fresh connection.
        assert session.get("/").text == "ok"
        time.sleep(0.3)  # past the idle time after which a kept socket is checked first
        # A POST is never sent twice, so its success shows the check replaced the socket.
        assert session.post("/", data=b"x").text == "ok"
        assert server.connections == 3
        assert all(call[4] is None for call in rec.calls)
        # A POST is not sent twice: the dropped connection is its failure.
        session.get("/")
        response = session.post("/", data=b"x")
        assert response.status_code == 0
        assert response.error is not None
        # A GET skips the check even after a long idle time: its retry covers it.
        assert session.get("/").text == "ok"
        time.sleep(0.3)
        before = len(rec.calls)
        assert session.get("/").text == "ok"
        assert rec.calls[before][4] is None
    finally:
        server.close()


def test_http10_and_length_less_answers(new_session: SessionFactory, rec: Recorded) -> None:
    answers = {
        1: b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
        2: b"HTTP/1.1 201 Created\r\nX-A: 1\r\n\r\nread to the end",
    }
    server = ScriptedServer(lambda n: answers[n], close_after=1)
    try:
        session = new_session(server.url, rec.hook)
        first = session.get("/")
        assert (first.status_code, first.text) == (200, "until close")
        second = session.get("/")
        assert (second.status_code, second.text) == (201, "read to the end")
        assert second.headers["x-a"] == "1"
        assert server.connections == 2
    finally:
        server.close()


def test_truncated_and_garbled_answers_are_failures(new_session: SessionFactory, rec: Recorded) -> None:
    answers = {
        1: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        2: b"NOT HTTP AT ALL\r\n\r\n",
    }
    server = ScriptedServer(lambda n: answers[n], close_after=1)
    try:
        session = new_session(server.url, rec.hook)
        truncated = session.get("/")
        assert truncated.status_code == 0
        assert "5 of 10" in str(truncated.error)
        garbled = session.get("/")
        assert garbled.status_code == 0
        assert garbled.error is not None
        assert len(rec.calls) == 2
    finally:
        server.close()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_with_the_default_insecure_context(
    new_session: SessionFactory, rec: Recorded, tls_context: ssl.SSLContext
) -> None:
    server = ScriptedServer(lambda n: OK, tls=tls_context)
    try:
        session = new_session(server.url, rec.hook)
        for _ in range(3):
            assert session.get("/").text == "ok"
        assert server.connections == 1
        strict = new_session(server.url, rec.hook, insecure=False)
        response = strict.get("/")
        assert response.status_code == 0
        assert isinstance(response.error, ssl.SSLError)
    finally:
        server.close()


def test_case_insensitive_dict() -> None:
    headers = CaseInsensitiveDict({"Content-Type": "a"})
    headers["content-type"] = "b"
    assert dict(headers) == {"content-type": "b"}
    assert headers == {"CONTENT-TYPE": "b"}
    assert headers.get("Content-TYPE") == "b"
    del headers["CONTENT-type"]
    assert len(headers) == 0


def test_response_request_is_what_was_sent(new_session: SessionFactory, session: HttpSession, target: Target) -> None:
    r = session.post("/echo?x=1", json={"a": 1}, headers={"X-Trace": "t1"})
    sent = r.request
    assert (sent.method, sent.path_url, sent.url) == ("POST", "/echo?x=1", f"{target.url}/echo?x=1")
    assert sent.headers["x-trace"] == "t1" and sent.headers["Content-Type"] == "application/json"
    assert sent.body == '{"a": 1}'  # JSON and forms as text, as Locust's FastHttpSession has them
    assert session.post("/echo", data={"b": "2"}).request.body == "b=2"
    assert session.post("/echo", data=b"\x00\xff").request.body == b"\x00\xff"
    assert session.get("/redirect/1").request.path_url == "/"  # the last hop
    refused = new_session(f"http://127.0.0.1:{closed_port()}", RequestEventHook())
    failed = refused.get("/nothing")
    assert failed.status_code == 0 and failed.request.method == "GET" and failed.request.body is None


def test_requests_streaming_interface_over_the_read_body(session: HttpSession) -> None:
    with session.get("/chunked?chunks=3", stream=True) as r:
        lines = list(r.iter_lines(decode_unicode=True))
        assert [line for line in lines if line] == ["chunk 0", "chunk 1", "chunk 2"]
        assert b"".join(r.iter_content(chunk_size=4)) == r.content
        assert list(r.iter_content(chunk_size=None)) == [r.content]
    r.close()
    assert not r.is_redirect
    assert session.get("/redirect/1", allow_redirects=False).is_redirect


class ForwardProxy(LoopbackServer):
    """A minimal HTTP proxy: an absolute-form request is relayed to its host, a CONNECT is
    tunnelled (or refused with 407). Records each connection's first request line."""

    def __init__(self, refuse_tunnels: bool = False) -> None:
        self.refuse_tunnels = refuse_tunnels
        self.first_lines: list[str] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                conn.close()
                return
            buf += chunk
        line, rest = buf.split(b"\r\n", 1)
        self.first_lines.append(line.decode())
        method, target, version = line.decode().split(" ")
        if method == "CONNECT":
            if self.refuse_tunnels:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                conn.close()
                return
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            leftover = rest.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in rest else b""
        else:
            parts = urlsplit(target)
            upstream = socket.create_connection((parts.hostname, parts.port))
            origin_form = f"{method} {parts.path or '/'} {version}\r\n".encode()
            leftover = origin_form + rest
        if leftover:
            upstream.sendall(leftover)
        relay = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
        relay.start()
        _pipe(conn, upstream)
        relay.join(timeout=10)  # _pipe shut both down: the other direction ends too
        upstream.close()
        conn.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_requests_through_a_proxy(new_session: SessionFactory, rec: Recorded, tls_context: ssl.SSLContext) -> None:
    plain = ScriptedServer(lambda n: OK)
    secure = ScriptedServer(lambda n: OK, tls=tls_context)
    proxy = ForwardProxy()
    try:
        session = new_session(plain.url, rec.hook, proxy_host="127.0.0.1", proxy_port=proxy.port)
        for _ in range(3):
            assert session.get("/x?a=1").text == "ok"
        response = session.get(f"{secure.url}/y")
        assert response.text == "ok", response.error
        assert session.get(f"{secure.url}/y").text == "ok"  # the tunnel is kept alive
        assert proxy.first_lines == [
            f"GET {plain.url}/x?a=1 HTTP/1.1",
            f"CONNECT 127.0.0.1:{secure.port} HTTP/1.1",
        ]
        assert plain.requests == 3 and secure.requests == 2 and secure.connections == 1
        assert all(call[4] is None for call in rec.calls)
        assert response.request.path_url == "/y"
    finally:
        for server in (plain, secure, proxy):
            server.close()


def test_a_refused_tunnel_is_a_failure_that_says_so(new_session: SessionFactory, rec: Recorded) -> None:
    proxy = ForwardProxy(refuse_tunnels=True)
    try:
        session = new_session(None, rec.hook, proxy_host="127.0.0.1", proxy_port=proxy.port)
        response = session.get("https://127.0.0.1:9/")
        assert response.status_code == 0
        assert "407" in str(response.error) and "refused a tunnel" in str(response.error)
        with pytest.raises(LocustError, match="both proxy_host and proxy_port"):
            HttpSession(None, rec.hook, proxy_host="127.0.0.1")
    finally:
        proxy.close()


# -- Locust's API details (checked against Locust 2.47's own tests) -----------------------------


def test_content_is_none_after_a_connection_error(new_session: SessionFactory, rec: Recorded) -> None:
    s = new_session(f"http://127.0.0.1:{closed_port()}", rec.hook)
    response = s.get("/")
    assert response.status_code == 0 and response.error is not None
    assert response.content is None
    assert response.text == "" and list(response.iter_lines()) == []
    with s.get("/", catch_response=True) as caught:
        assert caught.content is None
        caught.success()
    assert rec.last[4] is None


def test_success_without_catch_response_says_how_to_use_it(session: HttpSession) -> None:
    with session.get("/") as response:
        with pytest.raises(LocustError, match="you must pass catch_response=True"):
            response.success()
        with pytest.raises(LocustError, match="you must pass catch_response=True"):
            response.failure("no")
    not_entered = session.get("/", catch_response=True)
    with pytest.raises(LocustError, match="Make sure you use a with-block"):
        not_entered.success()


def _user_class(base: type, url: str, **attrs: Any) -> type:
    return type("PoolUser", (base,), {"host": url, **attrs})


@pytest.mark.parametrize("attribute", ["pool_manager", "client_pool"])
def test_users_given_one_pool_object_share_its_connections(target: Target, attribute: str) -> None:
    from lcore.env import Environment
    from lcore.users import HttpUser

    class OnePerHost:  # what Locust takes its size from: urllib3's maxsize, ghc's concurrency
        connection_pool_kw = {"maxsize": 1}
        client_args = {"concurrency": 1}

    env = Environment()
    shared = OnePerHost()
    a = _user_class(HttpUser, target.url, **{attribute: shared})(env)
    b = _user_class(HttpUser, target.url, **{attribute: shared})(env)
    before = target.connections
    for user in (a, b, b, a):
        assert user.client.get("/").status_code == 200
    assert target.connections - before == 1
    # and without one, a pool per user
    c, d = (_user_class(HttpUser, target.url)(env) for _ in range(2))
    before = target.connections
    for user in (c, d, d, c):
        user.client.get("/")
    assert target.connections - before == 2
    for user in (a, b, c, d):
        user.client.close()


def test_a_shared_pool_sends_each_sessions_own_headers(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    shared = object.__new__(type("Pool", (), {}))
    one = new_session(target.url, rec.hook, shared_pool=shared, default_headers={"X-Who": "one"})
    two = new_session(target.url, rec.hook, shared_pool=shared, default_headers={"X-Who": "two"})
    for session, who in ((one, "one"), (two, "two"), (one, "one")):
        assert session.get("/").request.headers["X-Who"] == who


def test_iter_lines_and_stream_as_on_locusts_fast_client(session: HttpSession, rec: Recorded) -> None:
    lines = list(session.iter_lines("/bytes/3"))
    assert lines == ["xxx"] and rec.last[:2] == ("GET", "/bytes/3")
    response = session.get("/bytes/5", stream=True)
    assert response.stream.read(2) == b"xx" and response.stream.read() == b"xxx"
    assert rec.last[3] == 5  # the announced Content-Length
    with pytest.raises(HTTPError):
        list(session.iter_lines("/status/500"))


def test_a_bad_ssl_context_factory_fails_the_request_not_the_session(new_session: SessionFactory, target: Target, rec: Recorded) -> None:
    def bad() -> ssl.SSLContext:
        raise ValueError("bad context")

    s = new_session(target.url.replace("http:", "https:"), rec.hook, ssl_context_factory=bad)
    with pytest.raises(ValueError, match="bad context"):
        s.get("/")


class SlowBodyServer(LoopbackServer):
    """Sends the head at once and the body 300 ms later."""

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
            time.sleep(0.3)
            conn.sendall(b"0123456789")


@pytest.mark.parametrize("stream", [False, True])
def test_stream_true_records_the_time_until_the_head(new_session: SessionFactory, rec: Recorded, stream: bool) -> None:
    server = SlowBodyServer()
    try:
        s = new_session(f"http://127.0.0.1:{server.port}", rec.hook)
        response = s.get("/", stream=stream)
        assert response.content == b"0123456789" and rec.last[3] == 10
        response_time = rec.last[2]
        if stream:
            assert response_time < 200  # as Locust: the download is not in it
        else:
            assert response_time >= 290
    finally:
        server.close()


def test_a_socket_error_with_a_constructor_of_its_own_is_combined_without_calling_it() -> None:
    from lcore._http.errors import request_error

    calls = []

    class Unreachable(OSError):
        def __init__(self, host: str) -> None:
            calls.append(host)
            super().__init__(f"cannot reach {host}")

    original = Unreachable("h")
    combined = request_error(original, connecting=True)
    assert calls == ["h"]  # only the original's own construction
    assert combined.args == ("cannot reach h",) and repr(combined) == repr(original)
    assert isinstance(combined, Unreachable) and isinstance(combined, requests.exceptions.ConnectionError)
