"""locust.contrib.qdrant under lcore: Locust's qdrant example against Qdrant's local mode.

No Qdrant server is in the package registries, so the example runs against qdrant-client's
local mode (``-H :memory:``: an in-process Qdrant per user). What it stored is checked through
the same client at the end of each user: the points that every recorded upsert wrote are there.
"""

from __future__ import annotations

import csv
import json

import pytest
from contrib_servers import need_module
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/qdrant/locustfile.py with a shorter wait; the other two users are not in
# it: one records what its collection holds when it stops, one queries a missing collection
EXAMPLE = """
import json
import os
import random

from locust import between, task
from locust.contrib.qdrant import QdrantUser

from qdrant_client.models import Distance, PointStruct, VectorParams


class SimpleQdrantUser(QdrantUser):
    wait_time = between(0.01, 0.03)

    def on_start(self):
        self.dimension = 128
        self.test_vectors = [[random.random() for _ in range(self.dimension)] for _ in range(10)]

    collection_name = "load_test_collection"
    vectors_config = VectorParams(
        size=128,
        distance=Distance.COSINE,
    )

    def __init__(self, environment):
        self.url = environment.host
        super().__init__(environment)

    @task(3)
    def upsert_data(self):
        points = [
            PointStruct(
                id=random.randint(1, 10000),
                vector=[random.random() for _ in range(self.dimension)],
                payload={"name": f"item_{random.randint(1, 1000)}"},
            )
        ]
        self.upsert(points)

    @task(5)
    def search_vectors(self):
        search_vector = random.choice(self.test_vectors)
        self.search(query=search_vector, limit=5)

    @task(2)
    def scroll_data(self):
        self.scroll(limit=5)

    @task(1)
    def delete_data(self):
        delete_id = random.randint(1, 10000)
        self.delete(points_selector=[delete_id])


class CountingUser(QdrantUser):
    # upserts fresh ids only and writes down what the collection holds when it stops
    fixed_count = 1
    wait_time = between(0.01, 0.03)
    collection_name = "counted"
    vectors_config = VectorParams(size=4, distance=Distance.COSINE)

    def __init__(self, environment):
        self.url = environment.host
        super().__init__(environment)
        self.next_id = 1

    @task
    def upsert_data(self):
        point = PointStruct(id=self.next_id, vector=[random.random() for _ in range(4)], payload={})
        if self.upsert([point])["success"]:
            self.next_id += 1

    def on_stop(self):
        stored = self.client.client.count(self.collection_name).count
        with open(os.environ["QDRANT_COUNTS"], "w") as f:
            json.dump({"stored": stored, "upserted": self.next_id - 1}, f)
        super().on_stop()


class MissingCollectionUser(QdrantUser):
    fixed_count = 1
    wait_time = between(0.05, 0.1)
    collection_name = "no_such_collection"

    def __init__(self, environment):
        self.url = environment.host
        super().__init__(environment)

    @task
    def search_vectors(self):
        self.search(query=[0.5] * 128, limit=5)
"""


def test_qdrant_example_in_local_mode(tmp_path, run_lcore) -> None:
    need_module("qdrant_client")
    locustfile = write(tmp_path, EXAMPLE)
    prefix = tmp_path / "run"
    counts = tmp_path / "counts.json"
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "4", "-r", "10", "-t", "3s", "-H", ":memory:",
        "--processes", "2", "--master-bind-port", str(free_port()), "--no-web",
        "--csv", str(prefix), env={"QDRANT_COUNTS": str(counts)},
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output[-4000:]  # the missing collection's searches failed
    assert "Traceback" not in proc.output, proc.output[-4000:]
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {
            (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
            for r in csv.DictReader(f)
            if r["Name"] != "Aggregated"
        }
    assert set(rows) == {("qdrant", n) for n in ("upsert", "search", "scroll", "delete")}
    assert all(n > 5 for n, _ in rows.values()), rows
    assert rows[("qdrant", "upsert")][1] == rows[("qdrant", "scroll")][1] == 0
    searches, failed_searches = rows[("qdrant", "search")]
    assert 0 < failed_searches < searches

    with open(f"{prefix}_failures.csv", newline="") as f:
        (failure,) = list(csv.DictReader(f))
    assert failure["Name"] == "search"
    assert "no_such_collection" in failure["Error"] and "not found" in failure["Error"]

    # the counting user's collection holds one point per upsert it made
    stored = json.loads(counts.read_text())
    assert stored["stored"] == stored["upserted"] > 0
