"""locust.contrib.oai under lcore: Locust's openai_ex.py against a local OpenAI-compatible
endpoint (tests/openai_server.py, aiohttp) that counts the requests it answered, reached
through the SDK's own settings (OPENAI_BASE_URL, OPENAI_API_KEY)."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from contrib_servers import need_module
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/openai_ex.py, unchanged but for a user whose model does not exist and one
# calling the chat completions API, so that failures and the other token count are seen too
EXAMPLE = """
import openai
from locust import run_single_user, task
from locust.contrib.oai import OpenAIUser


class MyUser(OpenAIUser):
    @task
    def t(self):
        self.client.responses.create(
            model="gpt-4o",
            instructions="You are a coding assistant that speaks like it were a Monty Python skit.",
            input="How do I check if a Python object is an instance of a class?",
        )
        with self.client.rename_request("mini"):  # here's how to rename requests
            self.client.responses.create(
                model="gpt-4o-mini",
                instructions="You are a coding assistant that speaks like it were a Monty Python skit.",
                input="How do I check if a Python object is an instance of a class?",
            )


class OtherCalls(OpenAIUser):
    fixed_count = 1
    client_kwargs = {"max_retries": 0}

    @task
    def t(self):
        self.client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Ni?"}]
        )
        try:
            self.client.responses.create(model="no-such-model", input="?")
        except openai.NotFoundError:
            pass  # the SDK raises it; the request is recorded as failed


if __name__ == "__main__":
    run_single_user(MyUser)
"""


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[int]:
    need_module("openai")
    port = free_port()
    with open(tmp_path / "openai-server.out", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("openai_server.py")), str(port)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:

            def listening() -> bool:
                assert proc.poll() is None, "the endpoint exited"
                with socket.socket() as s:
                    return s.connect_ex(("127.0.0.1", port)) == 0

            wait_until(listening, timeout=15)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def test_openai_example_records_what_the_endpoint_answered(tmp_path, run_lcore, endpoint) -> None:
    locustfile = write(tmp_path, EXAMPLE)
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "3", "-r", "10", "-t", "3s",
        "--processes", "2", "--master-bind-port", str(free_port()), "--no-web",
        "--csv", str(prefix),
        env={"OPENAI_BASE_URL": f"http://127.0.0.1:{endpoint}/v1", "OPENAI_API_KEY": "sk-test"},
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output[-4000:]  # the missing model's requests failed
    assert "Traceback" not in proc.output, proc.output[-4000:]
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(f) if r["Name"] != "Aggregated"}
    assert set(rows) == {
        ("POST", "/v1/responses"),
        ("POST", "mini"),
        ("POST", "/v1/chat/completions"),
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{endpoint}/counts", timeout=5) as r:
        seen = json.loads(r.read())

    def count(key: tuple[str, str]) -> int:
        return int(rows[key]["Request Count"])

    assert count(("POST", "mini")) == seen["/v1/responses gpt-4o-mini"] > 0
    assert (
        count(("POST", "/v1/responses"))
        == seen["/v1/responses gpt-4o"] + seen["/v1/responses no-such-model"]
    )
    assert (
        int(rows[("POST", "/v1/responses")]["Failure Count"])
        == seen["/v1/responses no-such-model"]
        > 0
    )
    assert count(("POST", "/v1/chat/completions")) == seen["/v1/chat/completions gpt-4o"] > 0
    # the size recorded is the output tokens the server reported
    assert float(rows[("POST", "mini")]["Average Content Size"]) == 7
    assert float(rows[("POST", "/v1/chat/completions")]["Average Content Size"]) == 5

    with open(f"{prefix}_failures.csv", newline="") as f:
        (failure,) = list(csv.DictReader(f))
    assert failure["Error"] == "ContribError('HTTP 404 Not Found for POST /v1/responses')"
