"""The embedded target, spoken to with the standard library's blocking sockets."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from lcore.target import Target, main


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with Target() as t:
        yield t


def fetch(
    target: Target,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_exchange(target: Target, data: bytes, timeout: float = 10.0) -> bytes:
    """Sends raw bytes, returns everything received until the server closes."""
    with socket.create_connection(("127.0.0.1", target.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_start_picks_a_free_port_and_listens_at_once() -> None:
    t = Target(port=0)
    try:
        t.start()
        assert t.port > 0
        assert t.url == f"http://127.0.0.1:{t.port}"
        socket.create_connection(("127.0.0.1", t.port), timeout=5).close()
    finally:
        t.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", t.port), timeout=5).close()


def test_a_connection_accepted_as_the_target_stops_is_closed_not_dropped() -> None:
    import gc

    for _ in range(30):  # connect, then stop at once: the accept races the stop
        t = Target(port=0).start()
        socket.create_connection(("127.0.0.1", t.port), timeout=5).close()
        t.stop()
        gc.collect()  # an unclosed socket would warn here (filterwarnings: error)


def test_start_fails_loudly_on_a_taken_port(target: Target) -> None:
    with pytest.raises(OSError):
        Target(port=target.port).start()


def test_root_and_unknown_paths_answer_200(target: Target) -> None:
    status, headers, body = fetch(target, "GET", "/")
    assert (status, body) == (200, b"lcore target\n")
    assert headers["content-length"] == str(len(body))
    status, _, body = fetch(target, "POST", "/any/thing/at/all?x=1", body=b"payload")
    assert (status, body) == (200, b"ok\n")


@pytest.mark.parametrize("code", [200, 201, 301, 404, 418, 500, 503])
def test_status_endpoint(target: Target, code: int) -> None:
    status, _, body = fetch(target, "GET", f"/status/{code}")
    assert status == code
    assert body.startswith(str(code).encode())


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_statuses_carry_no_body(target: Target, code: int) -> None:
    # Two requests on one connection: a stray body would corrupt the second answer.
    data = raw_exchange(
        target,
        f"GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    first, second = data.split(b"\r\n\r\n", 1)
    assert first.startswith(f"HTTP/1.1 {code} ".encode())
    assert b"content-length" not in first.lower()
    assert second.startswith(b"HTTP/1.1 200 OK")


def test_interim_status_is_followed_by_a_final_answer(target: Target) -> None:
    data = raw_exchange(target, b"GET /status/103 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK")


def test_head_answers_headers_only(target: Target) -> None:
    _, get_headers, get_body = fetch(target, "GET", "/json")
    data = raw_exchange(target, b"HEAD /json HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert data.endswith(b"\r\n\r\n")
    assert f"Content-Length: {len(get_body)}".encode() in data
    assert get_headers["content-type"] == "application/json"


def test_delay_by_path_and_by_query(target: Target) -> None:
    for path in ("/delay/150", "/json?delay=150"):
        start = time.perf_counter()
        status, _, _ = fetch(target, "GET", path)
        elapsed = time.perf_counter() - start
        assert status == 200
        assert 0.14 <= elapsed < 5.0


def test_bytes(target: Target) -> None:
    _, headers, body = fetch(target, "GET", "/bytes/100000")
    assert body == b"x" * 100000
    assert headers["content-type"] == "application/octet-stream"


def test_redirect_chain_ends_at_root(target: Target) -> None:
    status, headers, _ = fetch(target, "GET", "/redirect/3")
    assert (status, headers["location"]) == (302, "/redirect/2")
    _, headers, _ = fetch(target, "GET", "/redirect/1")
    assert headers["location"] == "/"
    status, headers, _ = fetch(target, "GET", "/redirect-to?url=http://example.org/x&status=307")
    assert (status, headers["location"]) == (307, "http://example.org/x")


def test_json_and_echo(target: Target) -> None:
    _, _, body = fetch(target, "GET", "/json")
    assert json.loads(body)["items"] == [1, 2, 3]
    _, _, body = fetch(target, "PUT", "/echo?a=1&b=two", body=b"hello", headers={"X-Thing": "yes"})
    doc = json.loads(body)
    assert doc["method"] == "PUT"
    assert doc["path"] == "/echo"
    assert doc["query"] == "a=1&b=two"
    assert doc["args"] == {"a": "1", "b": "two"}
    assert doc["headers"]["X-Thing"] == "yes"
    assert doc["body"] == "hello"


def test_chunked_request_body_is_decoded(target: Target) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    )
    data = raw_exchange(target, request)
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["body"] == "hello world"


def test_chunked_response(target: Target) -> None:
    status, headers, body = fetch(target, "GET", "/chunked?chunks=4")
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"


def test_gzip_and_deflate(target: Target) -> None:
    import zlib

    _, headers, body = fetch(target, "GET", "/gzip")
    assert headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(body))["gzipped"] is True
    _, headers, body = fetch(target, "GET", "/deflate")
    assert headers["content-encoding"] == "deflate"
    assert json.loads(zlib.decompress(body))["deflated"] is True


def test_cookies_set_and_echoed(target: Target) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    conn.request("GET", "/cookies/set?a=1&b=2")
    resp = conn.getresponse()
    resp.read()
    assert resp.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    conn.request("GET", "/cookies", headers={"Cookie": "a=1; b=2"})
    assert json.loads(conn.getresponse().read()) == {"cookies": {"a": "1", "b": "2"}}
    conn.close()


def test_close_endpoint_closes_the_connection(target: Target) -> None:
    data = raw_exchange(target, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert data.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in data


def test_http10_closes_unless_asked_to_keep_alive(target: Target) -> None:
    data = raw_exchange(target, b"GET / HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"lcore target\n")


def test_pipelined_requests_answer_in_order_even_when_delayed(target: Target) -> None:
    request = (
        b"GET /delay/100 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /close HTTP/1.1\r\n\r\n"
    )
    data = raw_exchange(target, request)
    first = data.index(b"delayed 100 ms")
    second = data.index(b"hello from lcore")
    third = data.index(b'"body": "abc"')
    fourth = data.index(b"closing")
    assert first < second < third < fourth


def test_request_split_across_writes(target: Target) -> None:
    with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
        for piece in (b"POST /echo HT", b"TP/1.1\r\nContent-Len", b"gth: 4\r\n\r\nab", b"cd"):
            sock.sendall(piece)
            time.sleep(0.01)  # lets each piece arrive on its own
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert b'"body": "abcd"' in data


def test_malformed_request_gets_400_and_close(target: Target) -> None:
    data = raw_exchange(target, b"NONSENSE\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    data = raw_exchange(target, b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")


def test_expect_continue_gets_an_interim_answer(target: Target) -> None:
    with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hi")
        assert b'"body": "hi"' in sock.recv(65536)


def test_counters_per_method_and_path_and_reset() -> None:
    with Target() as t:
        fetch(t, "GET", "/a?x=1")
        fetch(t, "GET", "/a?x=2")
        fetch(t, "POST", "/a", body=b"1")
        fetch(t, "GET", "/")
        assert t.counts() == {("GET", "/a"): 2, ("POST", "/a"): 1, ("GET", "/"): 1}
        assert t.total == 4
        # The control paths are not counted.
        _, _, body = fetch(t, "GET", "/__stats")
        stats = json.loads(body)
        assert stats["total"] == 4
        assert stats["requests"] == {"GET /a": 2, "POST /a": 1, "GET /": 1}
        assert stats["connections"] == 5
        status, _, _ = fetch(t, "POST", "/__reset")
        assert status == 200
        assert t.counts() == {}
        assert t.total == 0
        fetch(t, "GET", "/b")
        assert t.stats()["requests"] == {"GET /b": 1}
        t.reset()
        assert t.total == 0
        assert t.connections == 0


def test_connections_are_counted_and_kept_alive() -> None:
    with Target() as t:
        conn = http.client.HTTPConnection("127.0.0.1", t.port, timeout=10)
        for _ in range(5):
            conn.request("GET", "/")
            conn.getresponse().read()
        conn.close()
        assert t.total == 5
        assert t.connections == 1


def test_main_reports_a_taken_port(target: Target, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", str(target.port)]) == 1
    assert "cannot listen" in capsys.readouterr().err


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError("no line from the target process")
    return proc.stdout.readline().strip()


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_module_runs_as_a_process_and_stops_on_signal(signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lcore.target", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _read_line(proc, 30)
        assert line.startswith("lcore target listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/json")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            assert pipe is not None
            pipe.close()


def test_a_stall_is_a_fixed_schedule_from_the_origin() -> None:
    from lcore.target import Stall

    stall = Stall(every=5.0, length=1.0)
    assert stall.wait_at(0.0) == 0.0 and stall.wait_at(3.99) == 0.0
    assert stall.wait_at(4.0) == pytest.approx(1.0)
    assert stall.wait_at(4.75) == pytest.approx(0.25)
    assert stall.wait_at(5.0) == 0.0 and stall.wait_at(9.5) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="shorter than its period"):
        Target(stall=Stall(1.0, 1.0))


def test_a_stalling_target_holds_answers_until_the_stall_ends() -> None:
    from lcore.target import Stall

    with Target(stall=Stall(every=1.0, length=0.5)) as t:

        def phase() -> float:
            return (time.time() - t.origin) % 1.0

        def timed_get() -> float:
            start = time.monotonic()
            status, _, _ = fetch(t, "GET", "/")
            assert status == 200
            return time.monotonic() - start

        while not 0.05 < phase() < 0.3:  # answering
            time.sleep(0.01)
        assert timed_get() < 0.15
        while not 0.55 < phase() < 0.7:  # stalled: answered when the stall ends, at 1.0
            time.sleep(0.01)
        expected = 1.0 - phase()
        assert timed_get() == pytest.approx(expected, abs=0.1)
        stats = t.stats()
        assert stats["stall"] == {"every": 1.0, "length": 0.5, "origin": t.origin}
        assert stats["total"] == 2 and stats["first_request"] <= stats["last_request"]


def test_the_stall_options_go_together(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--stall-every", "5"], ["--stall-every", "1", "--stall-for", "2"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--port", "0", *argv])
        assert exit_info.value.code == 2
    assert "--stall" in capsys.readouterr().err


def test_the_truth_of_a_schedule_through_stalls() -> None:
    from lcore.target import Stall

    stall = Stall(every=5.0, length=1.0)
    waits = stall.truth(0.0, 10.0, 100)  # 1,000 requests due, a fifth of them in a stall
    assert len(waits) == 1000
    assert sum(1 for w in waits if w > 0) == 200
    assert max(waits) == pytest.approx(1.0, abs=0.01)
    # two paced users, a slot every 0.5 s from 3.9 (to 5.5) and from 4.2 (to 4.7)
    grid = stall.grid_truth([(3.9, 5.5), (4.2, 4.7)], 0.5)
    assert grid == pytest.approx([0.0, 0.6, 0.1, 0.0, 0.8, 0.3])
