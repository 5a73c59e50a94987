"""locust-plugins 5.0.3 under lcore (issue 13): the package imports, its -i/--iterations is
lcore's exact one (the plugin's own limit neither counts twice nor fights it), its wait times
and CSV readers drive real users, and its options and checks work. Real processes against the
embedded target, counted at the target."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import pytest
from test_engine import free_port, read_stats_csv, write

pytestmark = pytest.mark.integration

if importlib.util.find_spec("locust_plugins") is None:
    # run-tests.sh installs it (pip install --no-deps locust-plugins==5.0.3); CI must have it
    if os.environ.get("CI") == "true":
        raise RuntimeError("locust-plugins is not installed: run-tests.sh installs it")
    pytest.skip("locust-plugins is not installed", allow_module_level=True)

LOCUSTFILE = """
import locust_plugins  # noqa: F401  adds -i, --console-stats-interval, --check-* ...
from locust import HttpUser, TaskSet, task
from locust_plugins.csvreader import CSVDictReader, CSVReader
from locust_plugins.wait_time import constant_total_ips

paths = CSVReader("paths.csv")  # no header: each row is [path]
rows = CSVDictReader("rows.csv")  # a header, then dicts; both start over at the end


class Rows(TaskSet):
    @task
    def row(self):
        row = next(rows)
        self.client.get(row["path"], name=row["name"])


class RowUser(HttpUser):
    # a TaskSet's tasks are the runs locust-plugins wraps and counts (TaskSet.execute_task)
    wait_time = constant_total_ips(100)
    tasks = [Rows]


class PathUser(HttpUser):
    wait_time = constant_total_ips(100)

    @task
    def path(self):
        (path,) = next(paths)
        self.client.get(path)
"""

PATHS = ["/plugins/a", "/plugins/b", "/plugins/c"]
ROWS = {"first": "/plugins/row/1", "second": "/plugins/row/2"}


def run(tmp_path, run_lcore, target, *args: str):
    locustfile = write(tmp_path, LOCUSTFILE)
    (tmp_path / "paths.csv").write_text("".join(f"{p}\n" for p in PATHS))
    (tmp_path / "rows.csv").write_text("name,path\n" + "".join(f"{n},{p}\n" for n, p in ROWS.items()))
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web",
        "--master-bind-port", str(free_port()), "--csv", str(prefix), *args,
    )  # fmt: skip
    return proc.wait(90), proc.output, prefix


def test_iterations_wait_times_and_csv_readers_across_two_processes(tmp_path, target, run_lcore) -> None:
    code, out, prefix = run(
        tmp_path, run_lcore, target, "-u", "4", "-r", "100", "-i", "150", "-t", "60s", "--processes", "2"
    )
    assert code == 0, out[-3000:]
    assert "Uncaught error in event handler" not in out, out[-3000:]  # the plugin's listeners ran
    served = target.counts()
    # only what the CSV files hold was requested, 150 task runs in all: lcore's exact -i, not the
    # plugin's per-process count (which would allow 150 per worker)
    assert set(served) <= {("GET", p) for p in [*PATHS, *ROWS.values()]}, served
    assert sum(served.values()) == 150
    assert all(served.get(("GET", p), 0) > 0 for p in [*PATHS, *ROWS.values()]), served
    stats = read_stats_csv(prefix)
    assert {n: int(stats[n]["Request Count"]) for n in ROWS} == {
        n: served[("GET", p)] for n, p in ROWS.items()
    }  # CSVDictReader's rows named the requests
    assert int(stats["Aggregated"]["Request Count"]) == 150
    assert "Iteration limit reached" in out


def test_one_user_runs_exactly_n_taskset_runs(tmp_path, target, run_lcore) -> None:
    """One user in one process: the plugin's own limit (TaskSet.execute_task, which would quit
    the runner when its last user reaches it) and lcore's never both count a run."""
    code, out, _ = run(
        tmp_path, run_lcore, target, "-u", "1", "-r", "10", "-i", "40", "-t", "60s",
        "--processes", "1", "RowUser",
    )  # fmt: skip
    assert code == 0, out[-3000:]
    assert "Uncaught error" not in out and "Traceback" not in out, out[-3000:]
    assert target.counts() == {("GET", "/plugins/row/1"): 20, ("GET", "/plugins/row/2"): 20}


def test_the_plugins_checks_set_the_exit_code(tmp_path, target, run_lcore) -> None:
    code, out, _ = run(
        tmp_path, run_lcore, target, "-u", "2", "-r", "100", "-i", "20", "-t", "60s",
        "--check-rps", "1000000", "--console-stats-interval", "1",
    )  # fmt: skip
    assert code == 3, out[-3000:]
    assert "CHECK FAILED: total rps was" in out
    assert sum(target.counts().values()) == 20


def test_import_locust_plugins_outside_lcore() -> None:
    """Plain Python: `import locust` resolves to lcore's alias, and the plugin imports."""
    code = (
        "import locust_plugins, locust;"
        "from locust_plugins.csvreader import CSVReader;"
        "from locust_plugins.wait_time import constant_total_ips, constant_total_pacing;"
        "from locust_plugins import listeners, transaction_manager, distributor, connection_pools;"
        "from locust.user.task import DefaultTaskSet;"
        "print(locust.__name__, locust.stats.CONSOLE_STATS_INTERVAL_SEC)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["locust", "2"]


@pytest.mark.parametrize(("interval", "tables"), [(None, range(2, 4)), ("1", range(4, 8))])
def test_console_stats_interval(tmp_path, target, run_lcore, interval, tables) -> None:
    """Tables at 2 s (Locust's default), or each second from the first table on once the
    plugin's test_start listener has set locust.stats.CONSOLE_STATS_INTERVAL_SEC."""
    option = ["--console-stats-interval", interval] if interval else []
    code, out, _ = run(tmp_path, run_lcore, target, "-u", "1", "-r", "10", "-t", "6s", "PathUser", *option)
    assert code == 0, out[-3000:]
    periodic = out.count("Aggregated") - 2  # the final summary has two tables
    assert periodic in tables, out[-3000:]


POOLS = """
import locust_plugins  # noqa: F401
from locust import FastHttpUser, HttpUser, constant, task
from locust_plugins.connection_pools import FastHttpPool, RequestPool


class Pooled(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.pool = FastHttpPool(user=self, size=3)  # reads user.max_retries and friends

    @task
    def get(self):
        with self.pool.rename_request("pooled"):
            self.pool.get("/pool/fast")


class Requests(HttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.pool = RequestPool(user=self)  # --pool_size sessions

    @task
    def get(self):
        self.pool.get("/pool/requests")
"""


def test_connection_pools_open_one_connection_per_session(tmp_path, target, run_lcore) -> None:
    locustfile = write(tmp_path, POOLS)
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web", "-u", "2", "-r", "100",
        "-i", "2000", "--master-bind-port", str(free_port()), "--csv", str(prefix), "--pool_size", "4",
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-3000:]
    served = target.counts()
    assert served[("GET", "/pool/fast")] + served[("GET", "/pool/requests")] == 2000
    assert target.connections == 3 + 4  # each session of a pool keeps its own connection
    assert int(read_stats_csv(prefix)["pooled"]["Request Count"]) == served[("GET", "/pool/fast")]


DISTRIBUTOR = """
from locust import HttpUser, constant, events, task
from locust.runners import WorkerRunner
from locust_plugins.distributor import Distributor

numbers = None


@events.init.add_listener
def on_init(environment, **kwargs):
    global numbers
    # the master hands out the items; workers ask for each over custom messages
    source = None if isinstance(environment.runner, WorkerRunner) else iter(range(1_000_000))
    numbers = Distributor(environment, source, "numbers")


class Numbered(HttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get(f"/dist/{next(numbers)}", name="/dist/[n]")
"""


def test_distributor_hands_each_item_to_one_user_across_workers(tmp_path, target, run_lcore) -> None:
    locustfile = write(tmp_path, DISTRIBUTOR)
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web", "-u", "4", "-r", "100",
        "-i", "120", "--processes", "2", "--master-bind-port", str(free_port()),
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-3000:]
    assert target.counts() == {("GET", f"/dist/{n}"): 1 for n in range(120)}


TRANSACTIONS = """
from locust import HttpUser, constant, task
from locust_plugins.transaction_manager import TransactionManager


class Shopper(HttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.tm = TransactionManager()

    @task
    def checkout(self):
        self.tm.start_transaction("checkout")
        self.client.get("/tx/cart")
        response = self.client.get("/tx/pay")
        self.tm.end_transaction("checkout", success=response.ok)
"""


def test_transaction_manager_gathers_every_workers_transactions(tmp_path, target, run_lcore) -> None:
    """Workers ship their transactions through report_to_master/worker_report; the master writes
    the log and Locust's summary columns (locust.stats.get_readable_percentiles)."""
    locustfile = write(tmp_path, TRANSACTIONS)
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web", "-u", "4", "-r", "100",
        "-i", "80", "--processes", "2", "--master-bind-port", str(free_port()), "--csv", str(prefix),
        "--log-transactions-in-file",
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-3000:]
    assert "Uncaught error" not in proc.output, proc.output[-3000:]
    assert target.counts() == {("GET", "/tx/cart"): 80, ("GET", "/tx/pay"): 80}
    log_lines = (tmp_path / "run_transactions.csv").read_text().splitlines()
    assert len(log_lines) == 1 + 80 and all(",checkout," in line for line in log_lines[1:])
    with open(tmp_path / "run_transactions_summary.csv", newline="") as f:
        header, row = list(csv.reader(f))
    assert header[-3:] == ["99.9%", "99.99%", "100%"]
    assert row[:4] == ["Transaction", "checkout", "80", "0"]


JMETER = """
from locust import HttpUser, constant, events, task
from locust_plugins.listeners.jmeter import JmeterListener


@events.init.add_listener
def on_init(environment, **kwargs):
    JmeterListener(env=environment, testplan="plan", results_filename="jmeter.csv", flush_size=10)


class Visitor(HttpUser):
    wait_time = constant(0)

    @task
    def visit(self):
        self.client.get("/jmeter/page")
        self.client.get("/status/503")
"""


def test_jmeter_listener_writes_every_workers_requests(tmp_path, target, run_lcore) -> None:
    locustfile = write(tmp_path, JMETER)
    proc = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--headless", "--no-web", "-u", "4", "-r", "100",
        "-i", "60", "--processes", "2", "--master-bind-port", str(free_port()),
    )  # fmt: skip
    assert proc.wait(60) == 1, proc.output[-3000:]  # 1: the 503s are failures
    assert "Uncaught error" not in proc.output, proc.output[-3000:]
    with open(tmp_path / "jmeter.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r]
    assert len(rows) == 120 == sum(target.counts().values())
    assert sorted({(r["label"], r["success"], r["threadName"]) for r in rows}) == [
        ("/jmeter/page", "true", "plan"), ("/status/503", "false", "plan"),
    ]  # fmt: skip
