"""locust.contrib.mongodb under lcore: Locust's mongodb example against a MongoDB
wire-protocol server on loopback.

No MongoDB server is in the package registries; the closest real thing is NX-27017 (PyPI
``nx-27017``): a server that speaks MongoDB's wire protocol (OP_MSG, the handshake, find
cursors) over TCP, backed by SQLite, so pymongo connects to it as to mongod. The test's
launcher (tests/mongo_server.py) counts the commands it handled, so the queries lcore recorded
are checked against the finds the server ran.
"""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from contrib_servers import need_module
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/mongodb/locustfile.py (its address from MONGODB_URI), plus a user whose
# server is not there, for the failures
EXAMPLE = """
from locust import between, task
from locust.contrib.mongodb import MongoDBUser

import os


class MongoUser(MongoDBUser):
    conn_string = os.getenv("MONGODB_URI", "mongodb://localhost:27017/defaultdb")
    db_name = "test"  # change to your db name

    @task
    def db_query(self):
        self.client.execute_query("collection", {{"field": "value"}})  # update to match your collection, field, and value


class NoServerUser(MongoDBUser):
    fixed_count = 1
    wait_time = between(0.1, 0.2)
    conn_string = "mongodb://127.0.0.1:{closed_port}/?serverSelectionTimeoutMS=100"
    db_name = "test"

    @task
    def db_query(self):
        self.client.execute_query("collection", {{"field": "value"}})
"""


class MongoServer:
    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.counts_file = tmp_path / "mongo-counts.json"
        self.out = open(tmp_path / "mongo-server.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("mongo_server.py")), str(self.port),
             str(self.counts_file), str(tmp_path)],
            stdout=self.out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._listening, timeout=15)

    def _listening(self) -> bool:
        assert self.proc.poll() is None, "the MongoDB server exited"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def counts(self) -> dict[str, int]:
        return json.loads(self.counts_file.read_text()) if self.counts_file.exists() else {}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.close()


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[MongoServer]:
    need_module("pymongo")
    need_module("nx_27017")
    server = MongoServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_mongodb_example_records_what_the_server_ran(tmp_path, run_lcore, mongo) -> None:
    from pymongo import MongoClient

    uri = f"mongodb://127.0.0.1:{mongo.port}/defaultdb"
    with MongoClient(uri) as client:
        client["test"]["collection"].insert_many(
            [{"field": "value", "n": n} for n in range(5)] + [{"field": "other"}]
        )
        assert len(list(client["test"]["collection"].find({"field": "value"}))) == 5
    finds_before = mongo.counts()["find"]

    locustfile = write(tmp_path, EXAMPLE.format(closed_port=free_port()))
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "3", "-r", "10", "-t", "3s",
        "--processes", "2", "--master-bind-port", str(free_port()), "--no-web",
        "--csv", str(prefix), env={"MONGODB_URI": uri},
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output[-4000:]  # the unreachable server's queries failed
    assert "Traceback" not in proc.output, proc.output[-4000:]
    with open(f"{prefix}_stats.csv", newline="") as f:
        (row,) = [r for r in csv.DictReader(f) if r["Name"] != "Aggregated"]
    assert (row["Type"], row["Name"]) == ("MONGODB", "QUERY")
    queries, failures = int(row["Request Count"]), int(row["Failure Count"])
    assert failures > 0
    assert queries - failures > 50
    # every successful query was one find on the server
    assert mongo.counts()["find"] - finds_before == queries - failures

    with open(f"{prefix}_failures.csv", newline="") as f:
        (failure,) = list(csv.DictReader(f))
    error = failure["Error"]
    assert error.startswith("ServerSelectionTimeoutError('127.0.0.1:"), error
    assert "Connection refused" in error and "Topology" not in error, error
    assert int(failure["Occurrences"]) == failures
