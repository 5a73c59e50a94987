"""locust.contrib.milvus under lcore: Locust's milvus example against Milvus Lite.

Milvus Lite (the milvus-lite package) is a real Milvus server that pymilvus starts as a
subprocess on a local database file, talking gRPC to it; the example takes that file as its
host. After the run the test opens the same file and checks what a counting user stored.
"""

from __future__ import annotations

import csv
import json

import pytest
from contrib_servers import need_module
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/milvus/locustfile.py with a shorter wait; the other user is not in it: it
# inserts fresh ids into a collection of its own and writes down how many it inserted
EXAMPLE = """
import json
import os
import random

from locust import between, task
from locust.contrib.milvus import MilvusUser

from pymilvus import CollectionSchema, DataType, FieldSchema
from pymilvus.milvus_client import IndexParams


class SimpleMilvusUser(MilvusUser):
    wait_time = between(0.01, 0.03)

    def on_start(self):
        self.dimension = 128
        self.test_vectors = [[random.random() for _ in range(self.dimension)] for _ in range(10)]

    def __init__(self, environment):
        schema = CollectionSchema(
            fields=[
                FieldSchema(name="id", dtype=DataType.INT64, is_primary=True),
                FieldSchema(name="vector", dtype=DataType.FLOAT_VECTOR, dim=128),
                FieldSchema(name="name", dtype=DataType.VARCHAR, max_length=50),
            ],
            description="Test collection",
        )
        index_params = IndexParams()
        index_params.add_index(
            field_name="vector",
            index_type="IVF_FLAT",
            metric_type="L2",
        )
        super().__init__(
            environment,
            uri=environment.host,
            collection_name="load_test_collection",
            schema=schema,
            index_params=index_params,
            enable_dynamic_field=True,
            num_shards=2,
            consistency_level="Eventually",
        )

    @task(3)
    def insert_data(self):
        data = [
            {
                "id": random.randint(1, 10000),
                "vector": random.choice(self.test_vectors),
                "name": f"item_{random.randint(1, 1000)}",
            }
        ]
        self.insert(data)

    @task(5)
    def search_vectors(self):
        search_vector = random.choice(self.test_vectors)
        self.search(data=[search_vector], anns_field="vector", limit=5)

    @task(2)
    def query_data(self):
        query_id = random.randint(1, 10000)
        self.query(filter=f"id == {query_id}")

    @task(1)
    def delete_data(self):
        delete_id = random.randint(1, 10000)
        self.delete(filter=f"id == {delete_id}")


class CountingUser(MilvusUser):
    fixed_count = 1
    wait_time = between(0.01, 0.03)

    def __init__(self, environment):
        schema = CollectionSchema(
            fields=[
                FieldSchema(name="id", dtype=DataType.INT64, is_primary=True),
                FieldSchema(name="vector", dtype=DataType.FLOAT_VECTOR, dim=4),
            ]
        )
        index_params = IndexParams()
        index_params.add_index(field_name="vector", index_type="FLAT", metric_type="L2")
        super().__init__(
            environment, uri=environment.host, collection_name="counted", schema=schema,
            index_params=index_params, consistency_level="Strong",
        )
        self.next_id = 1

    @task
    def insert_fresh(self):
        if self.insert([{"id": self.next_id, "vector": [random.random() for _ in range(4)]}])["success"]:
            self.next_id += 1

    def on_stop(self):
        with open(os.environ["MILVUS_COUNTS"], "w") as f:
            json.dump({"inserted": self.next_id - 1}, f)
        super().on_stop()
"""


def test_milvus_example_against_milvus_lite(tmp_path, run_lcore) -> None:
    need_module("pymilvus")
    need_module("milvus_lite")
    locustfile = write(tmp_path, EXAMPLE)
    prefix = tmp_path / "run"
    db = tmp_path / "milvus.db"
    counts = tmp_path / "counts.json"
    # one worker process: Milvus Lite serves a database file to one process at a time
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "3", "-r", "10", "-t", "4s", "-H", str(db),
        "--master-bind-port", str(free_port()), "--no-web", "--csv", str(prefix),
        env={"MILVUS_COUNTS": str(counts)},
    )  # fmt: skip
    assert proc.wait(90) == 0, proc.output[-4000:]
    # no task raised (Milvus Lite's own server logs a traceback for a gRPC method it lacks:
    # pymilvus then does without it)
    with open(f"{prefix}_exceptions.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [], proc.output[-4000:]
    with open(f"{prefix}_stats.csv", newline="") as f:
        rows = {
            (r["Type"], r["Name"]): (int(r["Request Count"]), int(r["Failure Count"]))
            for r in csv.DictReader(f)
            if r["Name"] != "Aggregated"
        }
    assert set(rows) == {("milvus", n) for n in ("insert", "search", "query", "delete")}
    assert all(n > 3 and failures == 0 for n, failures in rows.values()), rows

    # the server holds every entity the counting user's recorded inserts wrote
    from pymilvus import MilvusClient

    inserted = json.loads(counts.read_text())["inserted"]
    client = MilvusClient(uri=str(db))
    try:
        stored = client.query("counted", filter="", output_fields=["count(*)"])[0]["count(*)"]
    finally:
        client.close()
    assert stored == inserted > 0


def test_users_of_one_process_create_their_collection_once(monkeypatch) -> None:
    """gRPC calls yield to other greenlets: two users' constructors both found the collection
    missing and both created it; Milvus Lite failed the second (CI saw it once in nine runs)."""
    need_module("pymilvus")
    import gevent

    from lcore.contrib import milvus

    created: list[str] = []

    class SlowClient:
        def has_collection(self, name: str) -> bool:
            gevent.sleep(0.05)  # a gRPC round trip, during which other users run
            return name in created

        def create_collection(self, collection_name: str, **kwargs: object) -> None:
            gevent.sleep(0.05)
            created.append(collection_name)

    monkeypatch.setattr(milvus, "_connect", lambda **kwargs: SlowClient())
    clients = [milvus.MilvusV2Client(uri="lite.db", collection_name="shared") for _ in range(3)]
    gevent.joinall([gevent.spawn(c.create_collection, schema=None, index_params=None) for c in clients])
    assert created == ["shared"]
