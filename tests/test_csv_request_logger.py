"""Locust's per-request CSV logger under lcore, where every run has worker processes: one file,
one header, a whole row for each request the target served."""

from __future__ import annotations

import csv

from test_engine import free_port, write

from lcore.contrib.csv_request_logger import CSV_COLUMNS

LOCUSTFILE = """
from locust import HttpUser, constant, events, task
from locust.contrib.csv_request_logger import CsvRequestLogger

logger = CsvRequestLogger({path!r}, flush_interval=7)

@events.init.add_listener
def on_init(environment, **kwargs):
    logger.register(environment)

class Reader(HttpUser):
    wait_time = constant(0.01)

    @task
    def page(self):
        self.client.get("/")
        self.client.get("/status/404", name="missing")
"""


def test_every_worker_writes_whole_rows_into_one_file(tmp_path, target, run_lcore) -> None:
    out = tmp_path / "requests.csv"
    out.write_text("a stale file from an earlier run\n")
    lf = write(tmp_path, LOCUSTFILE.format(path=str(out)))
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "6", "-r", "6", "-t", "3s",
        "--processes", "2", "--no-web", "--master-bind-port", str(free_port()),
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output  # the 404s are failures
    with out.open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS  # truncated by the master, one header
    body = rows[1:]
    assert all(len(row) == len(CSV_COLUMNS) for row in body)  # no row split by another's
    served = target.counts()
    assert sum(1 for r in body if r[2] == "/") == served[("GET", "/")] > 50
    failed = [r for r in body if r[2] == "missing"]
    assert len(failed) == served[("GET", "/status/404")]
    assert all(r[5] == "404" and "404" in r[6] for r in failed)
