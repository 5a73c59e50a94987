"""``lcore --worker -f -``: a worker on a box with no copy of the test gets it from the master.

Real processes: the master runs in one temporary directory holding the locustfile, a helper
module it imports and a CSV file it reads; the worker runs from another, empty one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import msgpack
import pytest
import zmq
from conftest import lcore_command, wait_until
from test_engine import free_port, read_stats_csv
from test_security import keys, worker_copy

from lcore import bundle
from lcore import protocol as p
from lcore._version import PROTOCOL_VERSION, __version__

pytestmark = pytest.mark.integration

LOCUSTFILE = """
from locust import HttpUser, task, constant
from feeder import names

class Reader(HttpUser):
    wait_time = constant(600)

    def on_start(self):
        # one request per CSV row, then idle: the counts are exact
        for name in names():
            self.client.get(f"/user/{name}", name="/user/[name]" if name == "bob" else None)

    @task
    def idle(self):
        pass
"""

FEEDER = """
import csv

def names():
    # relative to the working directory, as many feeders do
    with open("data/users.csv", newline="") as f:
        return [row["name"] for row in csv.DictReader(f)]
"""


def project(directory: Path) -> Path:
    (directory / "data").mkdir(parents=True)
    (directory / "locustfile.py").write_text(textwrap.dedent(LOCUSTFILE))
    (directory / "feeder.py").write_text(textwrap.dedent(FEEDER))
    (directory / "data/users.csv").write_text("name\nalice\nbob\ncarol\n")
    return directory


def master_args(target_url: str, port: int, *extra: str, workers: int = 1) -> list[str]:
    return [
        "-f", "locustfile.py", "-H", target_url, "--master", "--headless", "--expect-workers", str(workers),
        "-u", "4", "-r", "20", "-t", "3s", "--master-bind-port", str(port), "--no-web", *extra,
    ]  # fmt: skip


def worker_args(port: int, *extra: str) -> list[str]:
    return ["--worker", "-f", "-", "--master-host", "127.0.0.1", "--master-port", str(port), *extra]


def test_a_worker_with_no_copy_runs_the_masters_test_exactly(tmp_path, target, run_lcore) -> None:
    mdir = project(tmp_path / "master")
    wdir = tmp_path / "worker"
    wtmp = tmp_path / "worker-tmp"  # the worker's TMPDIR: its private copy must be gone at exit
    wdir.mkdir()
    wtmp.mkdir()
    port = free_port()
    master = run_lcore(*master_args(target.url, port, "--csv", "run", workers=2), cwd=mdir)
    master.wait_for_output("Waiting for workers", timeout=30)
    worker = run_lcore(*worker_args(port, "--processes", "2"), cwd=wdir, env={"TMPDIR": str(wtmp)})
    assert master.wait(60) == 0, master.output
    assert worker.wait(30) == 0, worker.output
    served = target.counts()
    assert served == {("GET", "/user/alice"): 4, ("GET", "/user/bob"): 4, ("GET", "/user/carol"): 4}
    rows = read_stats_csv(mdir / "run")
    assert int(rows["/user/alice"]["Request Count"]) == 4
    assert int(rows["/user/[name]"]["Request Count"]) == 4
    assert int(rows["Aggregated"]["Request Count"]) == 12
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    assert master.output.count("Sending the locustfile directory") == 2  # one per worker process
    assert worker.output.count("Got the locustfile from the master") == 2
    assert "Traceback" not in worker.output + master.output
    # nothing written where the worker stood but its own log; its copies are removed
    assert [p.name for p in wdir.iterdir()] == [worker.out_path.name]
    assert list(wtmp.iterdir()) == []


def test_the_worker_reads_its_own_options_not_the_masters(tmp_path, target, run_lcore) -> None:
    """The master's lcore.conf travels with its directory, but the worker's options come from
    where the worker was started: its relative --config still works, the master's
    'master = true' does not turn the worker into a master."""
    mdir = project(tmp_path / "master")
    port = free_port()
    (mdir / "lcore.conf").write_text(
        f"master = true\nheadless = true\nexpect-workers = 1\nusers = 4\nspawn-rate = 20\n"
        f"run-time = 3s\nmaster-bind-port = {port}\nhost = {target.url}\nweb-port = 0\n"
    )
    wdir = tmp_path / "worker"
    wdir.mkdir()
    (wdir / "worker.conf").write_text(f"master-port = {port}\n")
    master = run_lcore("-f", "locustfile.py", cwd=mdir)
    master.wait_for_output("Waiting for workers", timeout=30)
    worker = run_lcore("--worker", "-f", "-", "--config", "worker.conf", cwd=wdir)
    assert master.wait(60) == 0, master.output
    assert worker.wait(30) == 0, worker.output
    assert sum(target.counts().values()) == 12


def test_a_stopped_worker_leaves_no_copy_behind(tmp_path, target, run_lcore) -> None:
    mdir = project(tmp_path / "master")
    wdir, wtmp = tmp_path / "worker", tmp_path / "worker-tmp"
    wdir.mkdir()
    wtmp.mkdir()
    port = free_port()
    master = run_lcore(*master_args(target.url, port), "-t", "60s", cwd=mdir)  # the later -t wins
    master.wait_for_output("Waiting for workers", timeout=30)
    worker = run_lcore(*worker_args(port), cwd=wdir, env={"TMPDIR": str(wtmp)})
    master.wait_for_output("Ramping to 4 users", timeout=30)
    wait_until(lambda: sum(target.counts().values()) == 12, timeout=20)
    assert len(list(wtmp.iterdir())) == 1  # its private copy, while it runs
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output
    assert list(wtmp.iterdir()) == []
    # and one stopped while it still waits for a master
    waiting = run_lcore(*worker_args(free_port()), cwd=wdir, env={"TMPDIR": str(wtmp)})
    waiting.wait_for_output("Waiting for the master", timeout=30)
    waiting.proc.send_signal(signal.SIGTERM)
    waiting.wait(30)
    assert "Traceback" not in worker.output + waiting.output
    assert list(wtmp.iterdir()) == []


def test_a_worker_started_before_its_master_waits_for_it(tmp_path, target, run_lcore) -> None:
    mdir = project(tmp_path / "master")
    wdir = tmp_path / "worker"
    wdir.mkdir()
    port = free_port()
    worker = run_lcore(*worker_args(port), cwd=wdir)
    worker.wait_for_output(f"Waiting for the master at 127.0.0.1:{port} to send the locustfile", timeout=30)
    master = run_lcore(*master_args(target.url, port), cwd=mdir)
    assert master.wait(60) == 0, master.output
    assert worker.wait(30) == 0, worker.output
    assert target.counts() == {("GET", "/user/alice"): 4, ("GET", "/user/bob"): 4, ("GET", "/user/carol"): 4}


def test_too_big_is_one_line_on_the_master_and_exit_1_on_the_worker(tmp_path, target, run_lcore) -> None:
    mdir = project(tmp_path / "master")
    (mdir / "data/blob.bin").write_bytes(os.urandom(300_000))
    wdir = tmp_path / "worker"
    wdir.mkdir()
    port = free_port()
    master = run_lcore(*master_args(target.url, port, "--bundle-max-mb", "0.25"), cwd=mdir)
    master.wait_for_output("Waiting for workers", timeout=30)
    worker = run_lcore(*worker_args(port), cwd=wdir)
    assert worker.wait(30) == 1, worker.output
    expected = f"The locustfile directory {mdir} holds more than 256.0 KB of files"
    line = next(line for line in worker.output.splitlines() if expected in line)
    assert "--bundle-max-mb" in line and "ERROR" in line
    master.wait_for_output(expected, timeout=10)
    assert master.output.count(expected) == 1
    assert "Traceback" not in worker.output + master.output
    assert target.counts() == {}


def test_a_worker_with_a_lower_cap_refuses_the_bundle(tmp_path, target, run_lcore) -> None:
    mdir = project(tmp_path / "master")
    (mdir / "data/blob.bin").write_bytes(os.urandom(300_000))
    wdir = tmp_path / "worker"
    wdir.mkdir()
    port = free_port()
    master = run_lcore(*master_args(target.url, port), cwd=mdir)
    master.wait_for_output("Waiting for workers", timeout=30)
    worker = run_lcore(*worker_args(port, "--bundle-max-mb", "0.1"), cwd=wdir)
    assert worker.wait(30) == 1, worker.output
    line = next(line for line in worker.output.splitlines() if "ERROR" in line)
    assert "The master's locustfile bundle holds more than 102.4 KB of files" in line
    assert "--bundle-max-mb" in line
    assert "Traceback" not in worker.output


def test_an_unreachable_master_is_a_clear_error_and_exit_1(tmp_path) -> None:
    port = free_port()  # nothing listens there
    result = subprocess.run(
        lcore_command(*worker_args(port, "--connect-timeout", "2")),
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"Could not reach the master at 127.0.0.1:{port} to get the locustfile (-f -): gave up after 2 s" in out
    assert "Traceback" not in out


def test_connect_timeout_bounds_a_worker_with_its_own_copy_too(tmp_path) -> None:
    project(tmp_path)
    port = free_port()
    result = subprocess.run(
        lcore_command("-f", "locustfile.py", "--worker", "--master-port", str(port), "--connect-timeout", "2"),
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"Could not reach the master at 127.0.0.1:{port}: gave up after 2 s" in out


def test_a_local_run_keeps_its_files_to_itself(tmp_path, target, run_lcore) -> None:
    mdir = project(tmp_path / "master")
    wdir = tmp_path / "worker"
    wdir.mkdir()
    port = free_port()
    local = run_lcore("-f", "locustfile.py", "-H", target.url, "--headless", "-u", "1", "-r", "1", "-t", "20s",
                      "--master-bind-port", str(port), "--no-web", cwd=mdir)  # fmt: skip
    local.wait_for_output("Ramping to 1 users", timeout=30)
    # a local run opens no TCP port at all: a remote worker finds nothing to ask
    worker = run_lcore(*worker_args(port, "--connect-timeout", "2"), cwd=wdir)
    assert worker.wait(30) == 1, worker.output
    assert f"Could not reach the master at 127.0.0.1:{port}" in worker.output
    assert "Sending the locustfile" not in local.output


def test_a_peer_that_never_answers_is_told_apart_from_no_master(tmp_path) -> None:
    """Something listens (an older lcore, another program speaking ZeroMQ) but never sends the
    locustfile: the worker says so rather than 'could not reach'."""
    ctx = zmq.Context()
    try:
        silent = ctx.socket(zmq.ROUTER)
        silent.setsockopt(zmq.LINGER, 0)
        port = silent.bind_to_random_port("tcp://127.0.0.1")
        result = subprocess.run(
            lcore_command(*worker_args(port, "--connect-timeout", "2")),
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert silent.poll(0)  # it was asked
    finally:
        ctx.destroy(linger=0)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert f"The master at 127.0.0.1:{port} did not send the locustfile (-f -) within 2 s: is it lcore, of this version, started with --master?" in out


def test_minus_f_dash_only_runs_a_worker(tmp_path) -> None:
    result = subprocess.run(lcore_command("--worker", "-f", "-", "--list"), cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == "lcore: error: -f - (fetch the locustfile from the master) only runs a worker"


def test_the_fetch_goes_through_curve_when_the_worker_has_keys(tmp_path, target, run_lcore) -> None:
    d = keys(tmp_path, "k")
    mdir = project(tmp_path / "master")
    wdir = tmp_path / "worker"
    wdir.mkdir()
    remote = worker_copy(d, tmp_path / "remote-keys")
    stranger = worker_copy(keys(tmp_path, "other"), tmp_path / "stranger")
    shutil.copy(d / "master.key", stranger / "master.key")  # knows the master, but is not authorized
    port = free_port()
    master = run_lcore(*master_args(target.url, port, "--curve-keys", str(d)), cwd=mdir)
    master.wait_for_output("Waiting for workers", timeout=30)
    # a worker without an authorized key gets nothing, and says why
    refused = run_lcore(*worker_args(port, "--curve-keys", str(stranger), "--connect-timeout", "20"), cwd=wdir)
    assert refused.wait(30) == 1, refused.output
    assert "refused this worker's CURVE key" in refused.output
    assert "Sending the locustfile directory" not in master.output
    worker = run_lcore(*worker_args(port, "--curve-keys", str(remote)), cwd=wdir)
    assert master.wait(60) == 0, master.output
    assert worker.wait(30) == 0, worker.output
    assert sum(target.counts().values()) == 12


def test_the_master_answers_raw_requests_strictly(tmp_path, target, run_lcore) -> None:
    """What a hand-made client gets: a wrong protocol is told so, an offset past the end gets an
    empty chunk, and the chunks reassemble into the master's tree."""
    mdir = project(tmp_path / "master")
    (mdir / "data/blob.bin").write_bytes(os.urandom(2 * bundle.CHUNK_BYTES))
    port = free_port()
    master = run_lcore(*master_args(target.url, port), cwd=mdir)
    master.wait_for_output("Waiting for workers", timeout=30)
    ctx = zmq.Context()
    try:
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IDENTITY, b"raw-fetch")
        sock.connect(f"tcp://127.0.0.1:{port}")

        def ask(protocol: int, offset: int) -> p.BundleChunk:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the first answer waits for the packing
                sock.send(p.encode(p.BundleRequest(protocol, __version__, offset), "raw"))
                if sock.poll(1000):
                    message, sender = p.decode(sock.recv())
                    assert isinstance(message, p.BundleChunk) and sender == "master"
                    return message
            raise AssertionError("no answer from the master")

        wrong = ask(PROTOCOL_VERSION + 1, 0)
        assert wrong.data == b"" and f"protocol version {PROTOCOL_VERSION + 1}" in wrong.error
        first = ask(PROTOCOL_VERSION, 0)
        assert first.error == "" and first.offset == 0 and len(first.data) == bundle.CHUNK_BYTES
        past = ask(PROTOCOL_VERSION, first.total + 10**9)
        assert (past.offset, past.data, past.digest) == (first.total, b"", first.digest)
        download = bundle.Download()
        chunk = first
        while not download.add(chunk.digest, chunk.total, chunk.offset, chunk.data, chunk.error):
            chunk = ask(PROTOCOL_VERSION, download.next_offset)
        out = tmp_path / "out"
        out.mkdir()
        manifest = bundle.extract(download.data, str(out))
        assert (out / "data/blob.bin").read_bytes() == (mdir / "data/blob.bin").read_bytes()
        assert manifest.locustfiles == (str(out / "locustfile.py"),)
    finally:
        ctx.destroy(linger=0)
    assert "Traceback" not in master.output


@pytest.mark.parametrize(("option", "value"), [("--bundle-max-mb", "0"), ("--connect-timeout", "-1")])
def test_the_new_limits_must_be_positive(tmp_path, option, value) -> None:
    result = subprocess.run(lcore_command(*worker_args(5557, option, value)), cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == f"lcore: error: {option} must be greater than 0, not {float(value)}"


PACKING_WHILE_THE_LOOP_RUNS = """
from gevent import monkey
monkey.patch_all()  # as on the master: threads are greenlets there
import asyncio
from lcore import bundle, hub_loop
from lcore import protocol as p
from lcore.bundle_server import BundleServer
from lcore._version import PROTOCOL_VERSION

native_lock = monkey.get_original("_thread", "allocate_lock")()
native_lock.acquire()

def pack(source):
    native_lock.acquire()  # blocks its OS thread until the loop has ticked
    return bundle.pack(source)

async def main():
    server = BundleServer(bundle.Source((__file__,), "."), pack=pack)
    answers = []
    server.answer("w", p.BundleRequest(PROTOCOL_VERSION, "0.1.0", 0), lambda n, m: answers.append((n, m)))
    server.answer("w2", p.BundleRequest(PROTOCOL_VERSION, "0.1.0", 0), lambda n, m: answers.append((n, m)))
    for _ in range(5):
        await asyncio.sleep(0.01)  # the loop keeps running while the pack waits
    assert not answers
    native_lock.release()
    while len(answers) < 2:  # both answered once packed, without asking again
        await asyncio.sleep(0.01)
    print("answered", sorted(n for n, _ in answers), {m.offset for _, m in answers}, {m.error or "ok" for _, m in answers})

hub_loop.run(main())
"""


def test_packing_runs_beside_the_masters_loop_not_on_it(tmp_path) -> None:
    script = tmp_path / "packing.py"
    script.write_text(PACKING_WHILE_THE_LOOP_RUNS)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "answered ['w', 'w2'] {0} {'ok'}"


def test_a_hostile_master_cannot_write_outside_the_workers_copy(tmp_path) -> None:
    payload = {"format": 1, "workdir": ".", "locustfiles": ["locustfile.py"],
               "files": [["locustfile.py", False, b""], ["../../escape.py", False, b"x = 1"]]}  # fmt: skip
    data = zlib.compress(msgpack.packb(payload, use_bin_type=True))
    wdir, wtmp = tmp_path / "worker", tmp_path / "worker-tmp"
    wdir.mkdir()
    wtmp.mkdir()
    ctx = zmq.Context()
    try:
        fake = ctx.socket(zmq.ROUTER)
        fake.setsockopt(zmq.LINGER, 0)
        port = fake.bind_to_random_port("tcp://127.0.0.1")
        worker = subprocess.Popen(
            lcore_command(*worker_args(port, "--connect-timeout", "10")), cwd=wdir,
            env=dict(os.environ, TMPDIR=str(wtmp)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            assert fake.poll(20000)
            identity, _request = fake.recv_multipart()
            chunk = p.BundleChunk(hashlib.sha256(data).hexdigest(), len(data), 0, data)
            fake.send_multipart([identity, p.encode(chunk, "master")])
            out, _ = worker.communicate(timeout=30)
        finally:
            worker.kill()
            worker.wait()
    finally:
        ctx.destroy(linger=0)
    assert worker.returncode == 1, out
    assert "The locustfile bundle holds an unsafe path: '../../escape.py'" in out
    assert "Traceback" not in out
    assert list(wtmp.iterdir()) == []
    assert not list(tmp_path.rglob("escape.py"))
