"""What the benchmarks share: a loopback target that counts requests, CPU pinning, process-tree
CPU, throwaway venvs for the tools we compare against, and table/JSON output.

Not installed, not imported by lcore: the scripts next to this file put bench/ on sys.path.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

VENV_ROOT = Path(os.environ.get("LCORE_BENCH_CACHE", Path.home() / ".cache" / "lcore-bench"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cpu_plan() -> tuple[int | None, int | None]:
    """(generator CPU, target CPU): two different usable cores, or (None, None) on one core."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def pinned(cpu: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` pinning the child (and everything it forks) to one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def pin_self(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def raise_nofile(limit: int = 65536) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else limit
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# --- CPU accounting ------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """user + system seconds of ``pid`` and every live descendant (kernel figures, /proc)."""
    return sum(tree_cpu_by_pid(pid).values())


def tree_cpu_by_pid(pid: int) -> dict[int, float]:
    """user + system seconds of ``pid`` and each live descendant, by pid."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    out: dict[int, float] = {}
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[proc.pid] = t.user + t.system
    return out


def tree_runq_wait(pid: int) -> float:
    """Seconds the threads of ``pid``'s tree spent runnable but waiting for a CPU
    (/proc/*/task/*/schedstat): high when something else competes for the pinned core."""
    try:
        root = psutil.Process(pid)
        pids = [root.pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return 0.0
    total_ns = 0
    for p in pids:
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/schedstat") as f:
                    total_ns += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total_ns / 1e9


def children_rusage_cpu() -> float:
    """user + system seconds of every child this process has reaped (and what they reaped)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, to the session ``proc`` leads (started with start_new_session)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --- targets -------------------------------------------------------------------------------

_NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {connections}; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 900s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /__nginx_status {{ stub_status; }}
        location / {{ default_type text/plain; return 200 "lcore bench target\\n"; }}
    }}
}}
"""


@dataclass
class Target:
    """A running loopback target; ``count()`` is the number of requests it has served."""

    kind: str
    url: str
    proc: subprocess.Popen[Any]
    _reads: int = 0
    _extra: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def count(self) -> int:
        if self.kind == "nginx":
            with urllib.request.urlopen(self.url + "/__nginx_status", timeout=10) as r:
                text = r.read().decode()
            self._reads += 1
            # "server accepts handled requests\n A H R": R counts every status read, this one too
            served = int(text.splitlines()[2].split()[2])
            return served - self._reads
        with urllib.request.urlopen(self.url + "/__stats", timeout=10) as r:
            return int(json.loads(r.read())["total"])


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[Any], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"target did not listen on {host}:{port} in time")


@contextmanager
def target(
    cpu: int | None,
    *,
    prefer_nginx: bool = True,
    connections: int = 16384,
    embedded_args: Sequence[str] = (),
) -> Iterator[Target]:
    """nginx from the system when it is installed (one worker process), else lcore's embedded
    asyncio target (with ``embedded_args``, e.g. a stall); pinned to ``cpu``; always stopped
    on exit."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    workdir = tempfile.mkdtemp(prefix="lcore-bench-target-")
    try:
        if prefer_nginx and nginx:
            port = free_port()
            conf = Path(workdir, "nginx.conf")
            conf.write_text(_NGINX_CONF.format(dir=workdir, port=port, connections=connections))
            proc = subprocess.Popen(
                [nginx, "-e", f"{workdir}/error.log", "-p", workdir, "-c", str(conf)],
                preexec_fn=pinned(cpu),
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=open(Path(workdir, "stderr.log"), "w"),  # noqa: SIM115
            )
            t = Target("nginx", f"http://127.0.0.1:{port}", proc)
            try:
                _wait_for_port("127.0.0.1", port, proc, time.monotonic() + 15)
            except RuntimeError as e:
                stop_process(proc)
                raise RuntimeError(f"{e}: {Path(workdir, 'error.log').read_text()[-500:]}") from e
        else:

            def pin_and_raise() -> None:
                raise_nofile()
                if cpu is not None:
                    os.sched_setaffinity(0, {cpu})

            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lcore.target",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    *embedded_args,
                ],  # fmt: skip
                preexec_fn=pin_and_raise,
                start_new_session=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            prefix = "lcore target listening on "
            if not line.startswith(prefix):
                stop_process(proc)
                raise RuntimeError(f"embedded target did not start: {line!r}")
            t = Target("lcore.target", line[len(prefix) :], proc)
        yield t
    finally:
        if "t" in locals():
            stop_process(t.proc)
        shutil.rmtree(workdir, ignore_errors=True)


# --- throwaway venvs -----------------------------------------------------------------------


def venv(name: str, packages: Sequence[str], check: str) -> Path:
    """``VENV_ROOT/name`` with ``packages`` installed (pip, once); ``check`` is a file inside
    the venv that exists once the install succeeded (e.g. ``bin/locust``)."""
    root = VENV_ROOT / name
    if (root / check).exists():
        return root
    print(f"# installing {' '.join(packages)} into {root} (once) ...", flush=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *packages],
        check=True,
        timeout=900,
    )
    if not (root / check).exists():
        raise RuntimeError(f"{check} missing after installing {packages} into {root}")
    return root


def locust_python() -> str:
    """A Python that can ``import locust``: this one if it can, else the bench venv's."""
    probe = subprocess.run(
        [sys.executable, "-c", "import locust"], capture_output=True, timeout=120
    )
    if probe.returncode == 0:
        return sys.executable
    return str(venv("locust-venv", ["locust"], "bin/locust") / "bin" / "python")


# --- profiles ------------------------------------------------------------------------------


def py_spy() -> str:
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return str(here)
    return str(venv("py-spy-venv", ["py-spy"], "bin/py-spy") / "bin" / "py-spy")


def rank_collapsed(text: str) -> list[tuple[str, float, float]]:
    """Self and inclusive share of samples per ``file:function`` from py-spy's raw output."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_counts[frames[-1]] += n
        for name in set(frames):
            total_counts[name] += n
    if not samples:
        return []
    return [
        (name, 100.0 * n / samples, 100.0 * total_counts[name] / samples)
        for name, n in self_counts.most_common()
    ]


def _frame_name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "file.py:function", shortening site-packages paths
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3.":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    return f"{path}:{func}"


# --- output --------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(headers, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def write_json(path: str | None, document: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(document, f, indent=2, sort_keys=True)
            f.write("\n")


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
