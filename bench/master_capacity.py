"""Master capacity: how many workers, each reporting 50 endpoints once a second, one master
core sustains.

    python bench/master_capacity.py [--steps 100,250,500,750,1000,1250,1500] [--window 5]
                                    [--endpoints 50] [--rps-per-worker 2000] [--json FILE]
                                    [--loop hub|asyncio] [--results-db tmp|off|PATH|URL]

Three processes on loopback:

  master   the real lcore master (``MasterRuntime`` + the launcher's ``master_async``, started
           as ``lcore.launcher.processes.run_master`` does, headless, tcp on 127.0.0.1 only),
           pinned to one CPU. A probe task prints its merged request count twice a second.
           /metrics and the status page are fetched every second over HTTP when
           ``lcore.exporters.web`` exists; otherwise the Prometheus collector is rendered
           in-process every second, so the master still pays for a scrape.
  fakes    ONE process on the other CPU with a DEALER socket per fake worker (own identity)
           speaking the protocol: Hello (right protocol, version and locustfile digest), then
           every second a StatsReport (a realistic delta: ``RequestStats.record`` over
           ``--endpoints`` endpoints, ``take_delta().to_wire()``, fresh timestamps) and a
           Heartbeat; Spawn is answered with SpawningComplete. Workers are spread evenly over
           the second, as real ones are.
  this     ramps the fakes through ``--steps`` and, at each step, once every fake is welcomed
           and after ``--settle`` s, measures over ``--window`` s: the master's CPU (psutil:
           user+system of all its threads, % of one core) and its backlog (requests the fakes
           sent minus requests the master merged, in seconds of sending).

A step is sustained when the master stays under ``--max-cpu`` % of one core, its backlog
stays under 1.5 s and does not grow, and no worker is lost. The ramp stops at the first step
that is not sustained.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as c  # noqa: E402

HERE = os.path.abspath(__file__)
LOCUSTFILE = """
from lcore import HttpUser, between, task


class Bench(HttpUser):
    wait_time = between(1, 2)

    @task
    def index(self):
        self.client.get("/")
"""
PROBE_INTERVAL = 0.5
SENT_INTERVAL = 0.25
MAX_BACKLOG_S = 1.5
MAX_LOOP_LAG_S = 1.0


# --- the master process --------------------------------------------------------------------


def serve_master(
    locustfile: str, port: int, web_port: int | None, users: int, loop: str = "hub", results_db: str = "off"
) -> int:
    """What ``run_master`` does, plus a probe task printing the merged count. ``loop="hub"``
    is the master as it runs (patched, its asyncio loop on gevent's hub); ``"asyncio"`` is a
    plain asyncio loop, unpatched, for comparison."""
    from gevent import monkey

    if loop == "hub":
        monkey.patch_all()
    else:
        monkey.patch_time()
    from lcore.launcher.config import Config
    from lcore.launcher.master_main import master_async
    from lcore.launcher.options import parse_options
    from lcore.launcher.processes import custom_options, load_environment
    from lcore.locustfile import digest
    from lcore.log import setup_logging
    from lcore.master import MasterRuntime

    argv = [
        "-f", locustfile, "--master", "--headless", "-u", str(users), "-r", str(max(users, 1)),
        "-t", "3600s", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
        "--expect-workers", "1", "-H", "http://127.0.0.1:9", "--loglevel", "WARNING",
        *(["--web-host", "127.0.0.1", "--web-port", str(web_port)] if web_port else ["--no-web"]),
        *(["--no-results-db"] if results_db == "off" else ["--results-db", results_db]),
    ]  # fmt: skip
    config = Config.build(argv, parse_options(argv, partial=True))
    setup_logging(config.loglevel, config.logfile, "master")
    env, loaded, options = load_environment(config)
    runtime = MasterRuntime(
        env,
        endpoints=[f"tcp://127.0.0.1:{port}"],
        digest=digest(loaded.path),
        options_for_workers=custom_options(options),
        heartbeat_interval=options.heartbeat_interval,
        heartbeat_timeout=options.heartbeat_timeout,
        run_time=options.run_time or None,
        quit_when_stopped=True,
    )
    env.events.init.fire(environment=env, runner=runtime, web_ui=None)
    scrape = None
    if not web_port:
        try:
            from lcore.exporters.prometheus import make_registry, render

            registry = make_registry(runtime)
            scrape = lambda: render(registry)  # noqa: E731
        except ImportError:
            scrape = None

    async def probe() -> None:
        last_scrape = 0.0
        scrape_ms = 0.0
        scrape_bytes = 0
        while True:
            now = time.monotonic()
            if scrape is not None and now - last_scrape >= 1.0:
                last_scrape = now
                body, _ = scrape()
                scrape_ms = 1000 * (time.monotonic() - now)
                scrape_bytes = len(body)
            line = {
                "t": time.monotonic(),
                "merged": runtime.stats_merged.total.num_requests,
                "workers": len(runtime.workers),
                "lost": len(runtime.lost_workers),
                "malformed": runtime.malformed_frames,
                "refused": runtime.refused_workers,
                "scrape_ms": scrape_ms,
                "scrape_bytes": scrape_bytes,
            }
            print("PROBE " + json.dumps(line), flush=True)
            await asyncio.sleep(PROBE_INTERVAL)

    async def main() -> int:
        task = asyncio.get_running_loop().create_task(probe())
        try:
            return await master_async(runtime, options, config.worker_count_expected)
        finally:
            task.cancel()

    print(f"SCRAPE {'http' if web_port else 'in-process' if scrape else 'none'}", flush=True)
    if loop == "hub":
        from lcore import hub_loop

        return hub_loop.run(main())
    return asyncio.run(main())


# --- the fake workers ----------------------------------------------------------------------


def build_deltas(
    n_endpoints: int, rps: int, variants: int, seed: int
) -> list[tuple[bytes, bytes, int]]:
    """``variants`` one-second deltas of a worker doing ``rps`` requests/s over
    ``n_endpoints`` endpoints; each as (msgpack head, msgpack tail, requests) around the
    interval timestamps, which are filled in at send time."""
    import msgpack

    from lcore.stats import RequestStats

    rng = random.Random(seed)
    out = []
    for _ in range(variants):
        stats = RequestStats(now=0.0)
        for e in range(n_endpoints):
            method = "POST" if e % 5 == 4 else "GET"
            name = f"/api/v1/resource-{e}/{{id}}"
            median = 5 + 3 * (e % 17)  # ms: endpoints differ, each has a long tail
            for _ in range(max(1, int(rps / n_endpoints * rng.uniform(0.7, 1.3)))):
                rt = rng.lognormvariate(0, 0.6) * median
                error = None
                if e % 10 == 7 and rng.random() < 0.02:
                    error = RuntimeError(f"500 Server Error for /api/v1/resource-{e}")
                stats.record(method, name, rt, rng.randint(200, 5000), error)
        delta = stats.take_delta(now=1.0)
        wire = delta.to_wire()
        # a fixarray header of the wire's length (14 fields since the corrected histograms)
        assert len(wire) < 16
        head = bytes([0x90 | len(wire)]) + msgpack.packb(wire[0])
        tail = b"".join(msgpack.packb(x, use_bin_type=True) for x in wire[3:])
        out.append((head, tail, delta.num_requests))
    return out


def describe_delta(n_endpoints: int, rps: int, seed: int) -> None:
    """Prints what one stats report holds (a DELTA line for the orchestrator)."""
    import msgpack

    head, tail, n = build_deltas(n_endpoints, rps, 1, seed)[0]
    wire = msgpack.unpackb(head + msgpack.packb(0.0) + msgpack.packb(1.0) + tail)
    entries = len(wire[3]) // 2
    buckets = sum(wire[5])
    print(
        f"DELTA {entries} {n} {buckets} {len(head) + len(tail) + 18} {len(wire[7]) // 4}",
        flush=True,
    )


class _Fake:
    __slots__ = ("sock", "node_id", "welcomed", "seq", "users", "heartbeat", "joined_at")

    def __init__(self, sock: Any, node_id: str) -> None:
        self.sock = sock
        self.node_id = node_id
        self.welcomed = False
        self.seq = 0
        self.users: dict[str, int] = {}
        self.heartbeat = b""
        self.joined_at = 0.0


def fake_workers(endpoint: str, digest: str, n_endpoints: int, rps: int, seed: int) -> int:
    """Reads ``RAMP n`` / ``QUIT`` on stdin; prints ``JOINED``, ``SENT`` lines on stdout."""
    import msgpack
    import zmq

    from lcore import protocol as p
    from lcore._version import PROTOCOL_VERSION, __version__

    c.raise_nofile()
    describe_delta(n_endpoints, rps, seed)
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 65536)
    deltas = build_deltas(n_endpoints, rps, 8, seed)
    host = socket.gethostname()
    fakes: list[_Fake] = []
    due: list[tuple[float, int]] = []  # (when, index): the next thing each fake does
    sent_requests = sent_messages = dropped = 0
    pending_join: set[int] = set()
    join_started = 0.0
    last_report = 0.0
    worst_lag = 0.0
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    buffered = b""
    pid = os.getpid()

    def send(fake: _Fake, frame: bytes) -> bool:
        nonlocal dropped
        try:
            fake.sock.send(frame, zmq.NOBLOCK)
            return True
        except zmq.Again:
            dropped += 1
            return False

    def stats_frame(fake: _Fake) -> tuple[bytes, int]:
        head, tail, n = deltas[fake.seq % len(deltas)]
        fake.seq += 1
        now = time.time()
        body = head + msgpack.packb(now - 1.0) + msgpack.packb(now) + tail
        frame = (
            b"\x93"
            + msgpack.packb(p.StatsReport.TYPE)
            + msgpack.packb(fake.node_id)
            + b"\x94"
            + msgpack.packb(fake.seq)
            + body
            + msgpack.packb(fake.users)
            + b"\x80"
        )
        return frame, n

    def drain(fake: _Fake) -> bool:
        """Handle what the master sent; False once it said quit."""
        while True:
            try:
                frame = fake.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return True
            message, _ = p.decode(frame)
            if isinstance(message, p.Welcome):
                if not message.accepted:
                    raise SystemExit(f"the master refused a fake worker: {message.reason}")
                fake.welcomed = True
            elif isinstance(message, p.Spawn):
                fake.users = {str(k): int(v) for k, v in message.targets.items()}
                send(fake, p.encode(p.SpawningComplete(fake.users), fake.node_id))
            elif isinstance(message, p.Quit):
                return False

    def ramp(n: int) -> None:
        nonlocal join_started
        join_started = time.monotonic()
        for i in range(len(fakes), n):
            sock = ctx.socket(zmq.DEALER)
            node_id = f"fake-{pid}-{i:05d}"
            sock.setsockopt(zmq.IDENTITY, node_id.encode())
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            fake = _Fake(sock, node_id)
            fake.heartbeat = p.encode(p.Heartbeat("running", 10.0, 0), node_id)
            fake.joined_at = join_started
            fakes.append(fake)
            hello = p.Hello(PROTOCOL_VERSION, __version__, host, pid, 1, digest)
            send(fake, p.encode(hello, node_id))
            pending_join.add(i)
            heapq.heappush(due, (join_started + 0.02, i))

    running = True
    while running:
        now = time.monotonic()
        # the schedule: welcomed fakes report once a second, joining ones check their inbox
        while due and due[0][0] <= now:
            when, i = heapq.heappop(due)
            fake = fakes[i]
            if not drain(fake):
                running = False
                break
            if not fake.welcomed:
                heapq.heappush(due, (now + 0.02, i))
                continue
            if i in pending_join:
                pending_join.discard(i)
                # spread evenly over the second, by index
                heapq.heappush(due, (now + (i % 997) / 997, i))
                if not pending_join:
                    print(f"JOINED {len(fakes)} {now - join_started:.3f}", flush=True)
                continue
            worst_lag = max(worst_lag, now - when)
            frame, n = stats_frame(fake)
            if send(fake, frame):
                sent_requests += n
                sent_messages += 1
            if send(fake, fake.heartbeat):
                sent_messages += 1
            heapq.heappush(due, (when + 1.0, i))
        if now - last_report >= SENT_INTERVAL:
            last_report = now
            print(
                f"SENT {now:.4f} {sent_requests} {sent_messages} {dropped} {worst_lag:.4f} "
                f"{len(fakes) - len(pending_join)}",
                flush=True,
            )
            worst_lag = 0.0
        timeout = max(0.0, min((due[0][0] - time.monotonic()) if due else 0.05, 0.05))
        readable, _, _ = select.select([stdin], [], [], timeout)
        if readable:
            chunk = os.read(stdin, 4096)
            if not chunk:
                running = False
            buffered += chunk
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                words = line.decode().split()
                if words[:1] == ["RAMP"]:
                    ramp(int(words[1]))
                elif words[:1] == ["QUIT"]:
                    running = False
    for fake in fakes:
        send(fake, p.encode(p.Goodbye("bench done"), fake.node_id))
    time.sleep(0.5)
    ctx.destroy(linger=0)
    return 0


# --- the orchestrator ----------------------------------------------------------------------


@dataclass
class Step:
    workers: int
    join_s: float = 0.0
    window_s: float = 0.0
    master_cpu_pct: float = 0.0
    backlog_start_s: float = 0.0
    backlog_end_s: float = 0.0
    merged_rps: float = 0.0
    sent_rps: float = 0.0
    lost: int = 0
    dropped: int = 0
    fake_lag_s: float = 0.0
    scrape_ms: float = 0.0
    scrape_bytes: int = 0
    metrics_ms: float = 0.0
    page_ms: float = 0.0
    loop_lag_s: float = 0.0
    master_rss_mib: float = 0.0
    master_runq_pct: float = 0.0
    sustained: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_ms_per_worker(self) -> float:
        """Master CPU per worker per second: what one more worker costs, roughly."""
        return 10 * self.master_cpu_pct / self.workers if self.workers else 0.0

    profile: list[tuple[str, float, float]] = field(default_factory=list)


class _Lines:
    """Reads a child's stdout in a thread; keeps the latest line of each kind."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.latest: dict[str, str] = {}
        self.history: dict[str, list[str]] = {}
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, _, rest = line.strip().partition(" ")
            with self.cond:
                self.latest[kind] = rest
                self.history.setdefault(kind, []).append(rest)
                if len(self.history[kind]) > 2000:
                    del self.history[kind][:1000]
                self.cond.notify_all()

    def wait_for(self, kind: str, predicate: Any, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = self.latest.get(kind)
                if value is not None and predicate(value):
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(min(remaining, 0.5))

    def get(self, kind: str) -> str | None:
        with self.cond:
            return self.latest.get(kind)

    def sent_at(self, t: float) -> tuple[float, int] | None:
        """The fakes' cumulative sent count at time ``t`` (linear between two samples)."""
        with self.cond:
            samples = [line.split() for line in self.history.get("SENT", [])]
        points = [(float(s[0]), int(s[1])) for s in samples]
        before = [pt for pt in points if pt[0] <= t]
        after = [pt for pt in points if pt[0] > t]
        if not before:
            return None
        t0, n0 = before[-1]
        if not after:
            return t0, n0
        t1, n1 = after[0]
        return t, int(n0 + (n1 - n0) * (t - t0) / (t1 - t0))


def _backlog(master: _Lines, fakes: _Lines, rate: float) -> tuple[float, float, int]:
    """(probe time, backlog in seconds of sending, merged count) from the latest probe."""
    probe = json.loads(master.get("PROBE") or "{}")
    if not probe:
        return 0.0, 0.0, 0
    sent = fakes.sent_at(probe["t"])
    if sent is None or rate <= 0:
        return probe["t"], 0.0, probe["merged"]
    return probe["t"], max(0.0, (sent[1] - probe["merged"]) / rate), probe["merged"]


def _fetcher(
    web_port: int, stop: threading.Event, timings: list[tuple[float, float, float]]
) -> None:
    """GET /metrics and / once a second; records (when, /metrics ms, / ms); -1 for a failure."""
    while not stop.is_set():
        start = time.monotonic()
        took = []
        for path in ("/metrics", "/"):
            t = time.monotonic()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web_port}{path}", timeout=30) as r:
                    r.read()
                took.append(1000 * (time.monotonic() - t))
            except OSError:
                took.append(-1.0)
        timings.append((start, took[0], took[1]))
        stop.wait(max(0.0, 1.0 - (time.monotonic() - start)))


def _has_web() -> bool:
    import importlib.util

    return importlib.util.find_spec("lcore.exporters.web") is not None


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psutil

    from lcore.locustfile import digest

    master_cpu, fakes_cpu = c.cpu_plan()
    c.pin_self(fakes_cpu)
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    results: list[Step] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lcore-bench-master-") as tmp:
        locustfile = Path(tmp, "capacity_locustfile.py")
        locustfile.write_text(LOCUSTFILE)
        port = c.free_port()
        web_port = c.free_port() if _has_web() else None
        master_log = open(Path(tmp, "master.log"), "w+")  # noqa: SIM115
        fakes_log = open(Path(tmp, "fakes.log"), "w+")  # noqa: SIM115
        master_proc = subprocess.Popen(
            [sys.executable, HERE, "--serve-master", str(locustfile), "--port", str(port),
             "--web-port", str(web_port or 0), "--users", str(args.users), "--loop", args.loop,
             "--results-db", str(Path(tmp, "results.db")) if args.results_db == "tmp" else args.results_db],
            stdout=subprocess.PIPE, stderr=master_log, text=True, preexec_fn=c.pinned(master_cpu),
            start_new_session=True,
        )  # fmt: skip
        fakes_proc = subprocess.Popen(
            [sys.executable, HERE, "--fake-workers", f"tcp://127.0.0.1:{port}",
             "--digest", digest(str(locustfile)), "--endpoints", str(args.endpoints),
             "--rps-per-worker", str(args.rps_per_worker)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fakes_log, text=True,
            preexec_fn=c.pinned(fakes_cpu), start_new_session=True,
        )  # fmt: skip
        master, fakes = _Lines(master_proc), _Lines(fakes_proc)
        stop_fetch = threading.Event()
        fetch_ms: list[tuple[float, float, float]] = []
        try:
            if master.wait_for("PROBE", lambda _: True, 60) is None:
                raise RuntimeError("the master did not start: " + _tail(master_log))
            scrape_mode = master.get("SCRAPE") or "none"
            if web_port:
                threading.Thread(
                    target=_fetcher, args=(web_port, stop_fetch, fetch_ms), daemon=True
                ).start()
                notes.append(f"/metrics and / fetched over HTTP every second (port {web_port})")
            elif scrape_mode == "in-process":
                notes.append(
                    "no lcore.exporters.web yet: the Prometheus collector is rendered in the "
                    "master process every second instead of fetching /metrics; no status page"
                )
            else:
                notes.append("no /metrics scrape: neither exporters.web nor exporters.prometheus")
            master_ps = psutil.Process(master_proc.pid)
            delta = fakes.wait_for("DELTA", lambda _: True, 60)
            if delta:
                entries, requests, buckets, size, errors = (int(x) for x in delta.split())
                notes.append(
                    f"each stats report: {entries} entries, {requests:,} requests, {buckets:,} "
                    f"non-empty histogram buckets, {errors} error rows, {size:,} bytes"
                )
            print(
                f"# master pid {master_proc.pid} on CPU {master_cpu}, fakes on CPU {fakes_cpu}; "
                f"{args.endpoints} endpoints x ~{args.rps_per_worker} req/s per worker, 1 Hz",
                flush=True,
            )
            for n in steps:
                step = Step(n)
                assert fakes_proc.stdin is not None
                fakes_proc.stdin.write(f"RAMP {n}\n")
                fakes_proc.stdin.flush()
                joined = fakes.wait_for("JOINED", lambda v, n=n: int(v.split()[0]) == n, 120)
                if joined is None:
                    step.notes.append("not every fake was welcomed within 120 s")
                    results.append(step)
                    break
                step.join_s = float(joined.split()[1])
                time.sleep(args.settle)
                rate = n * args.rps_per_worker
                lost0 = json.loads(master.get("PROBE") or "{}").get("lost", 0)
                dropped0 = int((fakes.get("SENT") or "0 0 0 0").split()[3])
                spy = None
                if args.profile:
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    spy = subprocess.Popen(
                        [c.py_spy(), "record", "--pid", str(master_proc.pid), "--duration",
                         str(int(args.window)), "--rate", "100", "--nonblocking", "--format",
                         "raw", "--output", str(Path(args.profile, f"master_{n}.collapsed.txt"))],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                cpu0 = sum(master_ps.cpu_times()[:2])
                wait0 = c.tree_runq_wait(master_proc.pid)
                t0 = time.monotonic()
                _, step.backlog_start_s, merged0 = _backlog(master, fakes, rate)
                sent0 = fakes.sent_at(time.monotonic())
                lags = []
                scrape: list[float] = []
                fetch_before = len(fetch_ms)
                while time.monotonic() - t0 < args.window:
                    time.sleep(0.25)
                    sent = (fakes.get("SENT") or "0 0 0 0 0").split()
                    lags.append(float(sent[4]))
                    probe = json.loads(master.get("PROBE") or "{}")
                    scrape.append(probe.get("scrape_ms", 0.0))
                    # the probe prints every 0.5 s from the master's event loop: its age is
                    # how long that loop has not run other tasks (heartbeats, web, ramp)
                    age = time.monotonic() - probe.get("t", t0) - PROBE_INTERVAL
                    step.loop_lag_s = max(step.loop_lag_s, age)
                cpu1 = sum(master_ps.cpu_times()[:2])
                t1 = time.monotonic()
                step.master_runq_pct = 100 * (c.tree_runq_wait(master_proc.pid) - wait0) / (t1 - t0)
                _, step.backlog_end_s, merged1 = _backlog(master, fakes, rate)
                sent1 = fakes.sent_at(time.monotonic())
                probe = json.loads(master.get("PROBE") or "{}")
                step.window_s = t1 - t0
                step.master_cpu_pct = 100 * (cpu1 - cpu0) / step.window_s
                step.master_rss_mib = master_ps.memory_info().rss / 2**20
                step.merged_rps = (merged1 - merged0) / step.window_s
                if sent0 and sent1:
                    step.sent_rps = (sent1[1] - sent0[1]) / step.window_s
                step.lost = probe.get("lost", 0) - lost0
                step.dropped = int((fakes.get("SENT") or "0 0 0 0").split()[3]) - dropped0
                step.fake_lag_s = max(lags) if lags else 0.0
                step.scrape_ms = max(scrape) if scrape else 0.0
                step.scrape_bytes = probe.get("scrape_bytes", 0)
                window_fetches = fetch_ms[fetch_before:]
                if window_fetches:
                    step.metrics_ms = max(f[1] for f in window_fetches)
                    step.page_ms = max(f[2] for f in window_fetches)
                    if any(f[1] < 0 or f[2] < 0 for f in window_fetches):
                        step.notes.append("a /metrics or / fetch failed")
                growing = step.backlog_end_s - step.backlog_start_s > 0.5
                step.sustained = (
                    step.master_cpu_pct < args.max_cpu
                    and step.loop_lag_s < MAX_LOOP_LAG_S
                    and step.backlog_end_s < MAX_BACKLOG_S
                    and not growing
                    and step.lost == 0
                    and step.dropped == 0
                )
                if step.fake_lag_s > 0.5:
                    step.notes.append(
                        f"the fake process itself lagged {step.fake_lag_s:.2f} s behind schedule"
                    )
                if growing:
                    step.notes.append("backlog growing")
                if step.master_runq_pct > 20:
                    step.notes.append(
                        f"the master waited for its CPU {step.master_runq_pct:.0f}% of the window: "
                        "another process competed for that core, so this step understates it"
                    )
                if step.loop_lag_s >= MAX_LOOP_LAG_S:
                    step.notes.append(
                        f"the master's event loop ran no other task for {step.loop_lag_s:.1f} s "
                        "(probe, heartbeats and web starved): its figures in this window are stale"
                    )
                if spy is not None:
                    try:
                        spy.wait(args.window + 30)
                        profile = Path(args.profile, f"master_{n}.collapsed.txt")
                        step.profile = c.rank_collapsed(profile.read_text())[:25]
                    except (subprocess.TimeoutExpired, OSError) as e:
                        step.notes.append(f"py-spy failed: {e}")
                        c.stop_process(spy)
                results.append(step)
                print(
                    f"# {n} workers: master {step.master_cpu_pct:.0f}% CPU, backlog "
                    f"{step.backlog_end_s:.2f} s, lost {step.lost}, joined in {step.join_s:.1f} s",
                    flush=True,
                )
                if not step.sustained:
                    break
        finally:
            stop_fetch.set()
            if fakes_proc.poll() is None and fakes_proc.stdin is not None:
                try:
                    fakes_proc.stdin.write("QUIT\n")
                    fakes_proc.stdin.flush()
                except OSError:
                    pass
            try:
                fakes_proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
            c.stop_process(fakes_proc)
            if master_proc.poll() is None:
                master_proc.send_signal(signal.SIGTERM)
            try:
                master_proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
            c.stop_process(master_proc)
            master_log.flush()
            lost_lines = [ln for ln in _tail(master_log, 200_000).splitlines() if " lost: " in ln]
            if lost_lines:
                notes.append(f"master logged {len(lost_lines)} lost worker(s): {lost_lines[0]}")
    best = max((s.workers for s in results if s.sustained), default=0)
    return {"steps": results, "best": best, "notes": notes, "master_cpu": master_cpu}


def _tail(f: Any, size: int = 2000) -> str:
    f.flush()
    f.seek(0)
    return str(f.read()[-size:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,250,500,750,1000,1250,1500")
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured per step")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after joining")
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--rps-per-worker", type=int, default=2000)
    parser.add_argument("--users", type=int, default=0, help="-u for the master (0: none)")
    parser.add_argument("--max-cpu", type=float, default=95.0, help="% of one core")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the master in every window")
    parser.add_argument("--json", metavar="FILE", help="write the figures here")
    parser.add_argument(
        "--loop", choices=("hub", "asyncio"), default="hub",
        help="hub: the master as it runs (its asyncio loop on gevent's hub); asyncio: a plain "
        "asyncio loop, for comparison",
    )  # fmt: skip
    parser.add_argument(
        "--results-db", default="tmp", metavar="tmp|off|PATH|URL",
        help="the master's results store: tmp (default: an SQLite file in the bench's temp "
        "folder, as lcore saves every run), off (--no-results-db), or a path / postgresql:// URL",
    )  # fmt: skip
    # the two child roles
    parser.add_argument("--serve-master", metavar="LOCUSTFILE", help=argparse.SUPPRESS)
    parser.add_argument("--fake-workers", metavar="ENDPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--web-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--digest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_master:
        return serve_master(
            args.serve_master, args.port, args.web_port or None, args.users, args.loop, args.results_db
        )
    if args.fake_workers:
        return fake_workers(args.fake_workers, args.digest, args.endpoints, args.rps_per_worker, 1)

    out = run(args)
    steps: list[Step] = out["steps"]
    rows = [
        [
            c.fmt(s.workers), f"{s.join_s:.1f}", f"{s.master_cpu_pct:.0f}%",
            f"{s.master_runq_pct:.0f}%",
            f"{s.cpu_ms_per_worker:.2f}",
            f"{s.master_rss_mib:.0f}", c.fmt(s.sent_rps), c.fmt(s.merged_rps),
            f"{s.backlog_end_s:.2f}", f"{s.loop_lag_s:.2f}", c.fmt(s.lost), c.fmt(s.dropped),
            f"{s.metrics_ms or s.scrape_ms:.0f}", f"{s.page_ms:.0f}" if s.page_ms else "-",
            "yes" if s.sustained else "NO",
        ]
        for s in steps
    ]  # fmt: skip
    print()
    print(
        f"Master capacity: {args.endpoints} endpoints per worker, 1 stats report + 1 heartbeat "
        f"per worker per second, {args.window:g} s windows, master on CPU {out['master_cpu']}"
    )
    print(
        c.table(
            [
                "workers",
                "join s",
                "master CPU",
                "runq wait",
                "CPU ms/worker-s",
                "RSS MiB",
                "sent req/s",
                "merged req/s",
                "backlog s",
                "loop lag s",
                "lost",
                "dropped",
                "/metrics ms",
                "/ ms",
                "sustained",
            ],
            rows,
        )
    )
    for note in out["notes"]:
        print(f"note: {note}")
    for s in steps:
        for note in s.notes:
            print(f"note ({s.workers} workers): {note}")
    profiled = [s for s in steps if s.profile]
    if profiled:
        # the largest step that was sustained, else the first that was not
        shown = next((s for s in reversed(profiled) if s.sustained), profiled[-1])
        print()
        print(f"master profile at {shown.workers:,} workers (py-spy): self % / inclusive %")
        print(c.table(["file:function", "self", "total"], [
            [name, f"{a:.1f}", f"{b:.1f}"] for name, a, b in shown.profile
        ]))  # fmt: skip
    last = next((s for s in reversed(steps) if s.sustained), None)
    summary = f"summary: one master core sustains {out['best']:,} workers at 1 Hz x {args.endpoints} endpoints"
    if last:
        summary += f" ({last.master_cpu_pct:.0f}% CPU there)"
    failed = next((s for s in steps if not s.sustained), None)
    if failed:
        summary += f"; not {failed.workers:,} ({failed.master_cpu_pct:.0f}% CPU, backlog {failed.backlog_end_s:.1f} s)"
    if last:
        # fixed costs (web, heartbeats, console) make this an overestimate at low counts
        projected = int(last.workers * min(100.0, args.max_cpu) / max(last.master_cpu_pct, 1e-9))
        summary += f"; {last.cpu_ms_per_worker:.2f} CPU-ms per worker-second, ~{projected:,} workers projected at {args.max_cpu:.0f}% of a core"
    summary += f"; target >= 1,000: {'met' if out['best'] >= 1000 else 'NOT met'}"
    print(summary)
    c.write_json(
        args.json,
        {
            "benchmark": "master_capacity",
            "machine": c.machine(),
            "endpoints": args.endpoints,
            "rps_per_worker": args.rps_per_worker,
            "steps": [{**asdict(s), "cpu_ms_per_worker": s.cpu_ms_per_worker} for s in steps],
            "best_sustained_workers": out["best"],
            "notes": out["notes"],
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
