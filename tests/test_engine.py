"""The engine end to end: launcher, master and workers as real processes, real HTTP on loopback."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from conftest import lcore_command, wait_until

from lcore import protocol as p
from lcore._version import PROTOCOL_VERSION, __version__

pytestmark = pytest.mark.integration

BASIC = """
from locust import HttpUser, task, constant

class Quick(HttpUser):
    wait_time = constant(0.01)

    @task(3)
    def index(self):
        self.client.get("/")

    @task(1)
    def item(self):
        self.client.get("/item?id=7", name="/item")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path: Path, source: str, name: str = "locustfile.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def read_stats_csv(prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def common(port: int) -> list[str]:
    # a private TCP port per test so tests never collide with each other
    return ["--master-bind-port", str(port), "--no-web"]


def test_two_processes_count_exactly_what_the_target_served(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "20", "-r", "20", "-t", "4s",
        "--processes", "2", "--csv", str(prefix), *common(free_port()),
    )  # fmt: skip
    code = proc.wait(60)
    out = proc.output
    assert code == 0, out
    rows = read_stats_csv(prefix)
    served = target.counts()
    assert int(rows["/"]["Request Count"]) == served[("GET", "/")]
    assert int(rows["/item"]["Request Count"]) == served[("GET", "/item")]
    total = int(rows["Aggregated"]["Request Count"])
    assert total == sum(served.values()) > 100
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    for suffix in ("_stats_history.csv", "_failures.csv", "_exceptions.csv"):
        assert os.path.exists(f"{prefix}{suffix}")


def test_failures_set_exit_code_and_json(tmp_path, target, run_lcore) -> None:
    lf = write(
        tmp_path,
        """
        from locust import HttpUser, task, constant

        class Failing(HttpUser):
            wait_time = constant(0.05)

            @task
            def missing(self):
                self.client.get("/status/404")
        """,
    )
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "2", "-t", "2s", "--json",
        "--exit-code-on-error", "3", *common(free_port()),
    )  # fmt: skip
    assert proc.wait(60) == 3, proc.output
    out = proc.output
    # the JSON document, whatever log lines follow it
    document, _ = json.JSONDecoder().raw_decode(out[out.index("[\n") :])
    entry = next(e for e in document if e["name"] == "/status/404")
    assert entry["num_failures"] == entry["num_requests"] > 0


def test_remote_worker_joins_master_over_tcp(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    port = free_port()
    prefix = tmp_path / "remote"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1",
        "-u", "5", "-r", "5", "-t", "3s", "--csv", str(prefix), *common(port),
    )  # fmt: skip
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    assert master.wait(60) == 0, master.output
    assert worker.wait(20) == 0, worker.output
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


def test_bad_locustfiles_are_one_line_errors(tmp_path) -> None:
    cases = {
        "syntax.py": "def broken(:\n",
        "imports.py": "import module_that_does_not_exist\n",
        "nousers.py": "x = 1\n",
    }
    for name, source in cases.items():
        path = write(tmp_path, source, name)
        result = subprocess.run(
            lcore_command("-f", str(path), "--headless", "-t", "1s", "--no-web", "--master-bind-port", str(free_port())),
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        text = (result.stdout + result.stderr).strip()
        assert "Traceback" not in text, text
        assert len([line for line in text.splitlines() if "error" in line.lower()]) == 1, text


def test_worker_from_another_version_is_refused(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    port = free_port()
    master = run_lcore("-f", str(lf), "-H", target.url, "--master", *common(port))
    master.wait_for_output("", timeout=1)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, b"impostor")
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        hello = p.Hello(PROTOCOL_VERSION, "0.0.0-other", "elsewhere", 1, 1, "x")
        sock.send(p.encode(hello, "impostor"))
        assert sock.poll(15000), master.output
        reply, _ = p.decode(sock.recv())
        assert isinstance(reply, p.Welcome) and not reply.accepted
        assert "0.0.0-other" in reply.reason and __version__ in reply.reason
        master.wait_for_output("Refused worker impostor", timeout=5)
    finally:
        sock.close()
        ctx.term()


def test_weights_and_fixed_count_are_exact_across_two_workers(tmp_path, target, run_lcore) -> None:
    result_file = tmp_path / "counts.json"
    lf = write(
        tmp_path,
        f"""
        import json
        from locust import HttpUser, User, task, constant, events
        from locust.runners import MasterRunner

        class Heavy(User):
            weight = 3
            wait_time = constant(1)
            @task
            def t(self):
                pass

        class Light(User):
            weight = 1
            wait_time = constant(1)
            @task
            def t(self):
                pass

        class Admin(User):
            fixed_count = 1
            wait_time = constant(1)
            @task
            def t(self):
                pass

        @events.init.add_listener
        def init(environment, **kw):
            if isinstance(environment.runner, MasterRunner):
                def on_complete(user_count, **_):
                    r = environment.runner
                    per_worker = [dict(n.user_classes_count) for n in r.workers.values()]
                    with open({str(result_file)!r}, "w") as f:
                        json.dump({{"total": r.user_classes_count, "per_worker": per_worker}}, f)
                    r.quit()
                environment.events.spawning_complete.add_listener(on_complete)
        """,
    )
    proc = run_lcore("-f", str(lf), "--headless", "-u", "21", "-r", "100", "--processes", "2", "-t", "30s", *common(free_port()))
    assert proc.wait(60) == 0, proc.output
    counts = json.loads(result_file.read_text())
    # Admin first (1), then 20 by weight 3:1 -> 15:5
    assert counts["total"] == {"Admin": 1, "Heavy": 15, "Light": 5}
    assert len(counts["per_worker"]) == 2
    for cls in ("Heavy", "Light", "Admin"):
        values = [w.get(cls, 0) for w in counts["per_worker"]]
        assert max(values) - min(values) <= 1, counts


def test_shape_ends_the_test_by_itself(tmp_path, target, run_lcore) -> None:
    lf = write(
        tmp_path,
        """
        from locust import HttpUser, task, constant, LoadTestShape

        class U(HttpUser):
            wait_time = constant(0.1)
            @task
            def t(self):
                self.client.get("/")

        class Shape(LoadTestShape):
            def tick(self):
                run_time = self.get_run_time()
                if run_time < 1.5:
                    return (2, 10)
                if run_time < 3:
                    return (4, 10)
                return None
        """,
    )
    start = time.monotonic()
    proc = run_lcore("-f", str(lf), "-H", target.url, "--headless", "--processes", "2", *common(free_port()))
    assert proc.wait(60) == 0, proc.output
    assert time.monotonic() - start < 30
    assert sum(target.counts().values()) > 10


def test_custom_messages_round_trip(tmp_path, target, run_lcore) -> None:
    result_file = tmp_path / "acks.txt"
    lf = write(
        tmp_path,
        f"""
        from locust import User, task, constant, events
        from locust.runners import MasterRunner, WorkerRunner

        class U(User):
            wait_time = constant(1)
            @task
            def t(self):
                pass

        def on_ack(environment, msg, **kw):
            with open({str(result_file)!r}, "a") as f:
                f.write(f"{{msg.node_id}} {{msg.data['echo']}}\\n")

        def on_hello(environment, msg, **kw):
            environment.runner.send_message("ack", {{"echo": msg.data["n"] * 2}})

        @events.init.add_listener
        def init(environment, **kw):
            if isinstance(environment.runner, MasterRunner):
                environment.runner.register_message("ack", on_ack)
            if isinstance(environment.runner, WorkerRunner):
                environment.runner.register_message("hello", on_hello)

        @events.test_start.add_listener
        def start(environment, **kw):
            if isinstance(environment.runner, MasterRunner):
                environment.runner.send_message("hello", {{"n": 21}})
        """,
    )
    proc = run_lcore("-f", str(lf), "--headless", "-u", "2", "-r", "10", "-t", "3s", "--processes", "2", *common(free_port()))
    assert proc.wait(60) == 0, proc.output
    lines = result_file.read_text().split()
    acks = result_file.read_text().splitlines()
    assert len(acks) == 2 and all(line.endswith(" 42") for line in acks), lines
    assert len({line.split()[0] for line in acks}) == 2


def test_spawn_rate_one_with_two_workers_starts_one_user_a_second(tmp_path, run_lcore) -> None:
    starts = tmp_path / "starts.txt"
    lf = write(
        tmp_path,
        f"""
        import os, time
        from locust import User, task, constant

        class U(User):
            wait_time = constant(1)
            def on_start(self):
                with open({str(starts)!r}, "a") as f:
                    f.write(f"{{time.time()}} {{os.getpid()}}\\n")
            @task
            def t(self):
                pass
        """,
    )
    proc = run_lcore("-f", str(lf), "--headless", "-u", "4", "-r", "1", "-t", "5s", "--processes", "2", *common(free_port()))
    assert proc.wait(60) == 0, proc.output
    rows = [line.split() for line in starts.read_text().splitlines()]
    times = sorted(float(t) for t, _ in rows)
    assert len(times) == 4
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.6 < g < 1.5 for g in gaps), gaps
    assert len({pid for _, pid in rows}) == 2


def test_master_greenlet_recipe_quits_with_exit_code(tmp_path, target, run_lcore) -> None:
    lf = write(
        tmp_path,
        """
        import logging, time
        import gevent
        from locust import HttpUser, task, constant, events
        from locust.runners import STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP, WorkerRunner

        class U(HttpUser):
            wait_time = constant(0.05)
            @task
            def t(self):
                self.client.get("/status/500")

        def checker(environment):
            while environment.runner.state not in [STATE_STOPPING, STATE_STOPPED, STATE_CLEANUP]:
                time.sleep(0.5)
                if environment.runner.stats.total.fail_ratio > 0.2:
                    logging.info("fail ratio too high, quitting")
                    environment.process_exit_code = 7
                    environment.runner.quit()
                    return

        @events.init.add_listener
        def on_init(environment, **_kwargs):
            if not isinstance(environment.runner, WorkerRunner):
                gevent.spawn(checker, environment)
        """,
    )
    start = time.monotonic()
    proc = run_lcore("-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "10", "-t", "60s", *common(free_port()))
    assert proc.wait(60) == 7, proc.output
    assert time.monotonic() - start < 30
    assert "fail ratio too high" in proc.output


def test_sigkill_worker_is_declared_lost_and_the_test_finishes(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "2",
        "-u", "6", "-r", "100", "-t", "8s", *common(port),
    )  # fmt: skip
    workers = [
        run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)) for _ in range(2)
    ]
    master.wait_for_output("Ramping to 6 users", timeout=30)
    # both workers run users before one dies: each of the 6 users has its own connection
    wait_until(lambda: target.connections >= 6, timeout=20)
    os.killpg(workers[0].proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    out = master.wait_for_output(" lost: silent for", timeout=10)
    assert time.monotonic() - killed_at < 4.5, out
    assert master.wait(60) == 0, master.output
    assert "1 worker(s) lost" in master.output
    assert workers[1].wait(20) == 0


def test_sigkill_master_makes_local_workers_exit(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    proc = run_lcore("-f", str(lf), "-H", target.url, "--headless", "-u", "4", "-r", "10", "-t", "60s", "--processes", "2", *common(free_port()))
    proc.wait_for_output("Ramping to 4 users", timeout=30)
    import psutil

    launcher = psutil.Process(proc.proc.pid)
    children = wait_until(lambda: len(launcher.children()) == 3 and launcher.children(), timeout=20)
    master = min(children, key=lambda c: c.create_time())
    workers = [c for c in children if c.pid != master.pid]
    master.send_signal(signal.SIGKILL)
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive, [w.pid for w in alive]


def test_demo_runs(tmp_path) -> None:
    result = subprocess.run(
        lcore_command("--demo", "-t", "3s", "--no-web"), capture_output=True, text=True, timeout=90, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Aggregated" in result.stdout
    assert "The target counted" in result.stdout


def test_run_single_user_reaches_the_target(tmp_path, target) -> None:
    lf = write(
        tmp_path,
        """
        from locust import HttpUser, task, between

        class U(HttpUser):
            wait_time = between(0.01, 0.02)
            @task
            def t(self):
                self.client.get("/single")
        """,
    )
    result = subprocess.run(
        lcore_command("-f", str(lf), "-H", target.url, "--run-single-user", "--headless", "-t", "1s"),
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert target.counts()[("GET", "/single")] > 5
    assert "/single" in result.stdout


def test_run_single_user_stops_quietly_on_ctrl_c(tmp_path, target) -> None:
    lf = write(
        tmp_path,
        """
        from locust import HttpUser, task, constant

        class U(HttpUser):
            wait_time = constant(0.05)
            @task
            def t(self):
                self.client.get("/single")

            def on_stop(self):
                self.client.get("/bye")
        """,
    )
    proc = subprocess.Popen(
        lcore_command("-f", str(lf), "-H", target.url, "--run-single-user"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_until(lambda: target.counts().get(("GET", "/single"), 0) > 3, timeout=30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    assert "KeyboardInterrupt" not in err and "Traceback" not in err, err
    assert target.counts()[("GET", "/bye")] == 1  # on_stop ran, its request went through


def test_malformed_frames_do_not_take_the_master_down(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    port = free_port()
    prefix = tmp_path / "fuzz"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1",
        "-u", "3", "-r", "10", "-t", "3s", "--csv", str(prefix), *common(port),
    )  # fmt: skip
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 5000)  # deliver everything queued before closing
    sock.connect(f"tcp://127.0.0.1:{port}")
    junk = [b"", b"\x00\xff" * 10, msgpack.packb([1, 2]), msgpack.packb(["stats", "x", [1]]), msgpack.packb(["nope", "x", []])]
    for frame in junk * 20:
        sock.send(frame)
    sock.send_multipart([b"a", b"b", b"c"])
    sock.close()
    ctx.term()
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    assert master.wait(60) == 0, master.output
    assert worker.wait(20) == 0
    assert "Dropped a malformed message" in master.output
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


def test_cli_errors_are_one_line(tmp_path) -> None:
    lf = write(tmp_path, BASIC)
    for args in (["--no-such-option"], ["-t", "10x", "--headless"], ["-u", "-3"], ["--master", "--worker"]):
        result = subprocess.run(
            lcore_command("-f", str(lf), *args), capture_output=True, text=True, timeout=30, cwd=tmp_path
        )
        text = (result.stdout + result.stderr).strip()
        assert result.returncode != 0, args
        assert "Traceback" not in text and len(text.splitlines()) == 1, (args, text)


def test_python_m_module_entry(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "lcore.launcher.main", "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("lcore ")


def test_locustfile_options_reach_master_and_remote_workers(tmp_path, target, run_lcore) -> None:
    seen = tmp_path / "seen.txt"
    lf = write(
        tmp_path,
        f"""
        from locust import User, task, constant, events

        @events.init_command_line_parser.add_listener
        def _(parser):
            parser.add_argument("--my-arg", type=int, default=1, help="a locustfile option")

        @events.test_start.add_listener
        def start(environment, **kw):
            with open({str(seen)!r}, "a") as f:
                f.write(f"{{type(environment.runner).__name__}} {{environment.parsed_options.my_arg}}\\n")

        class U(User):
            wait_time = constant(1)
            @task
            def t(self):
                pass
        """,
    )
    port = free_port()
    master = run_lcore(
        "-f", str(lf), "--master", "--headless", "--expect-workers", "1", "-u", "1", "-r", "1", "-t", "2s",
        "--my-arg", "42", *common(port),
    )  # fmt: skip
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    assert master.wait(60) == 0, master.output
    assert worker.wait(20) == 0, worker.output
    lines = sorted(seen.read_text().splitlines())
    assert lines == ["MasterRuntime 42", "WorkerRuntime 42"], lines


def test_ctrl_c_stops_cleanly_and_writes_the_report(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    prefix = tmp_path / "interrupted"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "4", "-r", "10", "-t", "60s", "--processes", "2",
        "--csv", str(prefix), *common(free_port()),
    )  # fmt: skip
    proc.wait_for_output("Ramping to 4 users", timeout=30)
    wait_until(lambda: target.connections >= 4, timeout=20)  # every user is sending
    os.kill(proc.proc.pid, signal.SIGINT)
    assert proc.wait(30) == 0, proc.output
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0


def test_cpu_bound_worker_warns(tmp_path, run_lcore) -> None:
    lf = write(
        tmp_path,
        """
        from locust import User, task, constant

        class Busy(User):
            wait_time = constant(0)
            @task
            def spin(self):
                sum(i * i for i in range(20000))
        """,
    )
    proc = run_lcore("-f", str(lf), "--headless", "-u", "1", "-r", "1", "-t", "30s", *common(free_port()))
    out = proc.wait_for_output("figures may be skewed", timeout=40)
    assert "CPU" in out
    proc.wait(60)


def test_autostart_with_autoquit_exits_after_the_test(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--autostart", "-u", "2", "-r", "10", "-t", "2s", "--autoquit", "1",
        "--web-port", str(free_port()), "--master-bind-port", str(free_port()),
    )  # fmt: skip
    assert proc.wait(40) == 0, proc.output
    assert "--autoquit: exiting in 1 s" in proc.output
    assert sum(target.counts().values()) > 0


def test_fewer_users_than_workers_stops_promptly(tmp_path, target, run_lcore) -> None:
    lf = write(tmp_path, BASIC)
    start = time.monotonic()
    proc = run_lcore("-f", str(lf), "-H", target.url, "--headless", "-u", "1", "-r", "5", "-t", "2s", "--processes", "2", *common(free_port()))
    assert proc.wait(60) == 0, proc.output
    assert time.monotonic() - start < 12, proc.output
    assert "did not confirm" not in proc.output


def test_init_sees_worker_index_and_a_user_can_end_the_run(tmp_path, target, run_lcore) -> None:
    seen = tmp_path / "indexes.txt"
    lf = write(
        tmp_path,
        f"""
        from locust import HttpUser, task, constant, events
        from locust.exception import RescheduleTask
        from locust.runners import WorkerRunner

        @events.init.add_listener
        def init(environment, runner, **kw):
            if isinstance(runner, WorkerRunner):
                with open({str(seen)!r}, "a") as f:
                    f.write(f"{{runner.worker_index}}\\n")

        @events.request.add_listener
        def on_request(name, exception, **kw):
            if name == "/reschedule":
                raise RescheduleTask()

        class U(HttpUser):
            wait_time = constant(0.05)
            count = 0

            @task
            def t(self):
                U.count += 1
                if U.count >= 20:
                    self.environment.runner.quit()
                self.client.get("/reschedule")
                self.client.get("/never")  # skipped: the listener rescheduled the task
        """,
    )
    proc = run_lcore("-f", str(lf), "-H", target.url, "--headless", "-u", "1", "-r", "5", "-t", "60s", *common(free_port()))
    assert proc.wait(40) == 0, proc.output
    assert "The last worker quit, stopping test" in proc.output
    assert "Uncaught error" not in proc.output
    assert ("GET", "/never") not in target.counts()
    assert seen.read_text().split() == ["0"]


def test_shape_can_switch_user_classes(tmp_path, target, run_lcore) -> None:
    seen = tmp_path / "classes.txt"
    lf = write(
        tmp_path,
        f"""
        import json
        from locust import HttpUser, task, constant, LoadTestShape, events
        from locust.runners import MasterRunner

        class A(HttpUser):
            wait_time = constant(0.1)
            @task
            def t(self):
                self.client.get("/a")

        class B(HttpUser):
            wait_time = constant(0.1)
            @task
            def t(self):
                self.client.get("/b")

        class Shape(LoadTestShape):
            def tick(self):
                t = self.get_run_time()
                if t < 3:
                    return (4, 20, [A])
                if t < 6:
                    return (4, 20, [B])
                return None

        @events.init.add_listener
        def init(environment, **kw):
            if isinstance(environment.runner, MasterRunner):
                def on_complete(user_count, **_):
                    with open({str(seen)!r}, "a") as f:
                        runner = environment.runner
                        f.write(json.dumps([runner.user_classes_count, runner.target_user_classes_count,
                                            [c.__name__ for c in runner.user_classes]]) + "\\n")
                environment.events.spawning_complete.add_listener(on_complete)
        """,
    )
    proc = run_lcore("-f", str(lf), "-H", target.url, "--headless", "--processes", "2", *common(free_port()))
    assert proc.wait(60) == 0, proc.output
    stages = [json.loads(line) for line in seen.read_text().splitlines()]
    assert {k: v for k, v in stages[0][0].items() if v} == {"A": 4}, stages
    assert {k: v for k, v in stages[-1][0].items() if v} == {"B": 4}, stages
    assert stages[0][1] == {"A": 4, "B": 0} and stages[-1][1] == {"A": 0, "B": 4}, stages
    assert stages[0][2] == ["A", "B"]
    counts = target.counts()
    assert counts[("GET", "/a")] > 0 and counts[("GET", "/b")] > 0
