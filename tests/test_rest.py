"""HttpUser.rest(): JSON requests whose failures (bad JSON, asserts, exceptions) are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lcore import HttpUser, task
from lcore.env import Environment
from lcore.event import Events
from lcore.rest import RestResponseContextManager
from lcore.target import Target


class Api(HttpUser):
    @task
    def nothing(self) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with Target() as t:
        yield t


@pytest.fixture
def user(target: Target) -> Iterator[tuple[Api, list[dict[str, Any]]]]:
    env = Environment(events=Events(), host=target.url)
    recorded: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **kw: recorded.append(kw))
    u = type("Api", (Api,), {"host": target.url})(env)
    yield u, recorded
    u.client.close()


def error_text(entry: dict[str, Any]) -> str | None:
    e = entry["exception"]
    return None if e is None else str(e)


def test_json_is_parsed_and_json_headers_are_sent(user) -> None:
    u, recorded = user
    with u.rest("POST", "/echo", json={"a": 1}) as resp:
        assert isinstance(resp, RestResponseContextManager)
        headers = {k.lower(): v for k, v in resp.js["headers"].items()}
        assert headers["content-type"] == "application/json"
        assert headers["accept"] == "application/json"
        assert resp.js["method"] == "POST"
    assert len(recorded) == 1 and recorded[0]["exception"] is None
    assert recorded[0]["name"] == "/echo"


def test_headers_given_are_kept(user) -> None:
    u, _ = user
    with u.rest("GET", "/echo", headers={"Accept": "text/plain"}) as resp:
        headers = {k.lower(): v for k, v in resp.js["headers"].items()}
    assert headers["accept"] == "text/plain"


def test_a_body_that_is_not_json_is_a_failure(user) -> None:
    u, recorded = user
    with u.rest("GET", "/") as resp:
        assert resp.js is None
    text = error_text(recorded[-1])
    assert text is not None and text.startswith("Could not parse response as JSON.")
    assert "response code 200" in text


def test_an_empty_body_is_not_a_failure(user) -> None:
    u, recorded = user
    with u.rest("GET", "/status/204") as resp:
        assert resp.js is None
    assert recorded[-1]["exception"] is None


def test_failed_asserts_and_exceptions_become_failures_and_the_task_goes_on(user) -> None:
    u, recorded = user
    # raised by hand: pytest rewrites the asserts of a test module, not of a locustfile
    with u.rest("GET", "/json") as resp:
        if resp.js is not None:
            raise AssertionError("expected nothing,")
    assert error_text(recorded[-1]).startswith("expected nothing, response was {")
    with u.rest("GET", "/json") as resp:
        raise AssertionError()
    assert error_text(recorded[-1]) == "Assertion failed"
    with u.rest("GET", "/json") as resp:
        resp.js["no such key"]
    text = error_text(recorded[-1])
    assert text.startswith("KeyError: 'no such key' at ")
    assert "test_rest.py:" in text and ". Response was {" in text
    reached = True  # the exceptions above did not escape the with-blocks
    assert reached and len(recorded) == 3


def test_a_bad_status_is_a_failure_unless_success_is_called(user) -> None:
    u, recorded = user
    with u.rest("GET", "/status/404"):
        pass
    assert recorded[-1]["exception"] is not None and "404" in error_text(recorded[-1])
    with u.rest("GET", "/status/404") as resp:
        resp.success()
    assert recorded[-1]["exception"] is None


def test_no_response_is_a_failure_with_the_error_text() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = Environment(events=Events(), host=f"http://127.0.0.1:{port}")
    recorded: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **kw: recorded.append(kw))
    u = type("Api", (Api,), {"host": f"http://127.0.0.1:{port}"})(env)
    with u.rest("GET", "/x") as resp:
        assert resp.js is None
    assert len(recorded) == 1 and "refused" in error_text(recorded[0]).lower()


def test_rest_underscore_busts_caches_under_one_name(user) -> None:
    u, recorded = user
    with u.rest_("GET", "/echo?a=1") as resp:
        assert resp.js["query"].startswith("a=1&_=")
    with u.rest_("GET", "/echo") as resp:
        assert resp.js["query"].startswith("_=")
    assert [r["name"] for r in recorded] == ["/echo?a=1&_=...", "/echo?_=..."]
