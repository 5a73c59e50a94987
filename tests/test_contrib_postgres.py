"""locust.contrib.postgres under lcore: Locust's postgres example against a real PostgreSQL.

The server (a throwaway cluster on loopback) counts what it ran in pg_stat_statements and logs
every failed statement, so both the successes and the failures lcore recorded are checked
against what the server saw.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from contrib_servers import Postgres, need_module, running_postgres
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/postgres/locustfile.py (connection from PG* variables), plus a user whose
# query fails, so that failures are recorded too
LOCUSTFILE = """
import os
import random

from locust import TaskSet, between, task
from locust.contrib.postgres import PostgresUser


class PostgresLocust(PostgresUser):
    @task
    def run_select_query(self):
        self.client.execute_query(
            "SELECT * FROM loadtesting.invoice WHERE amount > 500",
        )

    @task
    def run_update_query(self):
        random_amount = random.randint(1, 12)
        self.client.execute_query(
            f"UPDATE loadtesting.invoice SET amount={random_amount} WHERE amount < 10",
        )

    PGHOST = os.getenv("PGHOST", "localhost")
    PGPORT = os.getenv("PGPORT", "5432")
    PGDATABASE = os.getenv("PGDATABASE", "test_db")
    PGUSER = os.getenv("PGUSER", "postgres")
    PGPASSWORD = os.getenv("PGPASSWORD", "postgres")

    conn_string = f"postgresql://{PGUSER}:{PGPASSWORD}@{PGHOST}:{PGPORT}/{PGDATABASE}"


class BrokenQueryUser(PostgresUser):
    fixed_count = 1
    wait_time = between(0.05, 0.1)
    conn_string = PostgresLocust.conn_string

    @task
    def missing_table(self):
        self.client.execute_query("SELECT * FROM loadtesting.missing")
"""


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    need_module("psycopg")
    with running_postgres() as server:
        yield server


def read_rows(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def read_failures(prefix: Path) -> dict[tuple[str, str], tuple[str, int]]:
    with open(f"{prefix}_failures.csv", newline="") as f:
        return {
            (r["Method"], r["Name"]): (r["Error"], int(r["Occurrences"])) for r in csv.DictReader(f)
        }


def prepare(server: Postgres) -> None:
    import psycopg

    with psycopg.connect(server.url + "/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE test_db")
    with psycopg.connect(server.url + "/test_db", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE SCHEMA loadtesting")
        conn.execute("CREATE TABLE loadtesting.invoice (id serial PRIMARY KEY, amount int)")
        conn.execute(
            "INSERT INTO loadtesting.invoice (amount) SELECT g % 1000 FROM generate_series(1, 200) g"
        )
        conn.execute("SELECT pg_stat_statements_reset()")


def statements_run(server: Postgres) -> dict[str, int]:
    import psycopg

    with psycopg.connect(server.url + "/test_db", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT split_part(query, ' ', 1), sum(calls)::int FROM pg_stat_statements "
            "WHERE query LIKE '%loadtesting.invoice%' GROUP BY 1"
        ).fetchall()
    return dict(rows)


def test_postgres_example_records_what_the_server_ran(tmp_path, postgres, run_lcore) -> None:
    prepare(postgres)
    locustfile = write(tmp_path, LOCUSTFILE)
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "4", "-r", "4", "-t", "3s", "--processes", "2",
        "--master-bind-port", str(free_port()), "--no-web", "--csv", str(prefix),
        env={"PGHOST": "127.0.0.1", "PGPORT": str(postgres.port), "PGDATABASE": "test_db"},
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output[-4000:]  # 1: some requests failed, as in Locust
    assert "Traceback" not in proc.output, proc.output[-4000:]

    rows = read_rows(prefix)
    ok = int(rows[("postgres_success", "execute_query")]["Request Count"])
    assert int(rows[("postgres_success", "execute_query")]["Failure Count"]) == 0
    failed = rows[("postgres_failure", "execute_query")]
    assert int(failed["Request Count"]) == int(failed["Failure Count"]) > 0
    assert ok > 20

    # every successful call ran once on the server: the SELECTs and UPDATEs it counted
    ran = statements_run(postgres)
    assert set(ran) == {"SELECT", "UPDATE"}, ran
    assert sum(ran.values()) == ok

    # every failure is one error in the server's log, and its text says what went wrong
    error, occurrences = read_failures(prefix)[("postgres_failure", "execute_query")]
    assert 'relation "loadtesting.missing" does not exist' in error
    assert occurrences == int(failed["Request Count"])
    log = postgres.dir / "log"
    wait_until(
        lambda: (
            log.read_text().count('relation "loadtesting.missing" does not exist') >= occurrences
        )
    )
    assert log.read_text().count('relation "loadtesting.missing" does not exist') == occurrences
