"""lcore's HttpSession against a naive geventhttpclient loop, on the same target.

    python bench/http_client_bench.py [--users 10] [--duration 5] [--path /] [--rounds 1]

N greenlets ("users") each own a client and request ``--path`` in a loop for
``--duration`` seconds; lcore's session records every request into a counting recorder,
as a worker would. The target is nginx when it is on PATH (``--no-nginx`` to skip),
otherwise the embedded ``lcore.target`` in a subprocess. On a machine with two or more
cores the target and this process are pinned to different cores. Prints requests/s and
requests per CPU-second of this process, and lcore's ratio to the raw loop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gevent
from geventhttpclient import HTTPClient

from lcore.event import RequestEventHook
from lcore.http import HttpSession

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir};
    proxy_temp_path {dir};
    fastcgi_temp_path {dir};
    uwsgi_temp_path {dir};
    scgi_temp_path {dir};
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "lcore target\\n"; }}
    }}
}}
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextmanager
def embedded_target(cpu: int | None) -> Iterator[tuple[str, int, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lcore.target", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_pin(cpu),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("lcore target listening on http://"):
            raise RuntimeError(f"target did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1])
        yield "127.0.0.1", port, "lcore.target (asyncio)"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def nginx_target(cpu: int | None) -> Iterator[tuple[str, int, str]]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=tmp, port=port))
        proc = subprocess.Popen(
            ["nginx", "-c", conf, "-p", tmp], stderr=subprocess.PIPE, preexec_fn=_pin(cpu)
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    HTTPClient("127.0.0.1", port).get("/").read()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("nginx did not start") from None
                    time.sleep(0.05)
            yield "127.0.0.1", port, "nginx"
        finally:
            proc.terminate()
            proc.wait(10)


def run_raw(host: str, port: int, path: str, users: int, duration: float) -> int:
    done = 0

    def user() -> None:
        nonlocal done
        client = HTTPClient(host, port, concurrency=1)
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            response = client.get(path)
            response.read()
            done += 1
        client.close()

    gevent.joinall([gevent.spawn(user) for _ in range(users)], raise_error=True)
    return done


def run_lcore(host: str, port: int, path: str, users: int, duration: float) -> int:
    done = 0
    failures = 0

    def recorder(method: str, name: str, rt: float, length: int, exc: object) -> None:
        nonlocal done, failures
        done += 1
        if exc is not None:
            failures += 1

    hook = RequestEventHook()
    hook.recorder = recorder

    def user() -> None:
        session = HttpSession(f"http://{host}:{port}", hook)
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            session.get(path)
        session.close()

    gevent.joinall([gevent.spawn(user) for _ in range(users)], raise_error=True)
    if failures:
        raise RuntimeError(f"{failures} lcore requests failed")
    return done


def measure(
    run: Callable[[str, int, str, int, float], int],
    host: str,
    port: int,
    path: str,
    users: int,
    duration: float,
) -> tuple[float, float]:
    run(host, port, path, users, min(0.5, duration))  # warm up connections and caches
    wall0, cpu0 = time.perf_counter(), time.process_time()
    count = run(host, port, path, users, duration)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return count / wall, count / cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10, help="concurrent greenlets")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--path", default="/")
    parser.add_argument("--rounds", type=int, default=1, help="alternate raw/lcore this often")
    parser.add_argument("--no-nginx", action="store_true", help="use lcore.target even so")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to cores")
    args = parser.parse_args(argv)

    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    client_cpu, target_cpu = (cpus[0], cpus[1]) if pin else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    use_nginx = shutil.which("nginx") is not None and not args.no_nginx
    target = nginx_target if use_nginx else embedded_target

    results: dict[str, list[tuple[float, float]]] = {"raw geventhttpclient": [], "lcore": []}
    with target(target_cpu) as (host, port, label):
        print(
            f"target: {label} on {host}:{port}; {args.users} users, {args.duration:g} s per run, "
            f"path {args.path}, {'pinned' if pin else 'not pinned'}"
        )
        for _ in range(args.rounds):
            results["raw geventhttpclient"].append(
                measure(run_raw, host, port, args.path, args.users, args.duration)
            )
            results["lcore"].append(
                measure(run_lcore, host, port, args.path, args.users, args.duration)
            )

    summary = {
        name: (statistics.mean(r for r, _ in runs), statistics.mean(c for _, c in runs))
        for name, runs in results.items()
    }
    raw_rps, raw_cpu = summary["raw geventhttpclient"]
    print(f"{'client':<22}{'req/s':>10}{'req/CPU-s':>12}{'ratio req/s':>13}{'ratio CPU':>11}")
    for name, (rps, per_cpu) in summary.items():
        print(
            f"{name:<22}{rps:>10.0f}{per_cpu:>12.0f}{rps / raw_rps:>13.2f}{per_cpu / raw_cpu:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
