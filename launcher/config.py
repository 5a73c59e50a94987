"""The test's configuration: built once by the launcher, validated completely before any process
starts, frozen, and handed to each process for what it needs (uvicorn's ``Config``).

    argv ─ parse_options ─▶ argparse.Namespace ─ Config.build ─▶ Config ──fork──▶ master, workers

``parse_options`` reads every source (defaults, config files, ``LCORE_*``/``LOCUST_*``, the
command line) and checks the values (``options.validate``, ``preflight.check_world``).
``Config.build`` adds what the launcher decides from them — the locustfiles found, how many
worker processes, the endpoints, the CURVE keys — so that every mistake is one
``lcore: error:`` line before anything forks. A child parses the command line again with its
locustfile's own options (``load_environment``): that namespace is Locust's
``environment.parsed_options``, the locustfile's to read (and the status page's to fill in);
the engine's settings come from here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lcore.log import setup_logging

from .options import OptionsError, find_locustfiles, resolve_processes


def bracket(host: str) -> str:
    """An IPv6 address in brackets, as a URL wants it."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Config:
    argv: tuple[str, ...]
    # -f as found: absolute paths, comma-separated; "-" when each worker fetches it
    locustfile: str
    # --run-single-user, --list, --show-task-ratio(-json): run here, fork nothing
    inspects: bool
    master: bool
    worker: bool
    # worker processes this launcher forks (on a --worker box: those that connect out)
    local_workers: int
    # workers a headless master waits for before it starts the test
    worker_count_expected: int
    expect_workers_max_wait: float
    # a --worker's master; a --master's TCP endpoint for other boxes (a local run has none)
    master_endpoint: str
    master_bind_endpoint: str | None
    master_keys: Any
    worker_keys: Any
    loglevel: str
    logfile: str | None
    log_format: str
    stats_interval: float
    heartbeat_interval: float
    heartbeat_timeout: float
    connect_timeout: float
    bundle_max_bytes: int
    max_stats_entries: int
    iterations: int
    run_time: float | None
    headless: bool
    # --skip-log-setup: the locustfile configures logging itself (no handler of lcore's)
    skip_log_setup: bool
    no_web: bool
    web_login: bool
    web_base_path: str
    # the open model and the rate cap (None: closed model, no cap); -u as the open model's ceiling
    arrival_rate: float | None = None
    max_rps: float | None = None
    num_users: int | None = None

    @property
    def fetched(self) -> bool:
        """``-f -``: each worker process fetches the locustfile (and its tree) from the master."""
        return self.locustfile == "-"

    @property
    def locustfiles(self) -> list[str]:
        return [p for p in self.locustfile.split(",") if p and not self.fetched]

    @classmethod
    def build(cls, argv: Sequence[str], options: argparse.Namespace) -> Config:
        """From the options ``parse_options`` read and checked; raises OptionsError for what
        only the launcher can tell (no locustfile there, unreadable CURVE keys ...)."""
        o = options
        inspects = bool(
            o.run_single_user or o.list_commands or o.show_task_ratio or o.show_task_ratio_json
        )
        fetched = o.locustfile == "-"
        if fetched and inspects:
            raise OptionsError("-f - (fetch the locustfile from the master) only runs a worker")
        # -f FILE, a name without .py, a directory or a comma-separated list (as Locust)
        locustfile = "-" if fetched else ",".join(o.locustfiles or find_locustfiles(o.locustfile))
        local_workers = resolve_processes(o.processes) if o.processes else (0 if o.master else 1)
        master_keys, worker_keys = _curve_keys(o.curve_keys, o.worker)
        bind_endpoint = None
        if o.master:
            # only a distributed master opens a port for workers on other machines; a local run
            # speaks over the private ipc socket alone, as Locust's local mode opens no port
            # (--master-bind-port is accepted and unused)
            bind_endpoint = f"tcp://{bracket(o.master_bind_host or '*')}:{o.master_bind_port}"
        return cls(
            argv=tuple(argv),
            locustfile=locustfile,
            inspects=inspects,
            master=bool(o.master),
            worker=bool(o.worker),
            local_workers=local_workers,
            # headless: wait for the local workers, or for --expect-workers remote ones with
            # --master (without it no other worker can join: waiting for more would never end)
            worker_count_expected=o.expect_workers if o.master else max(local_workers, 1),
            expect_workers_max_wait=float(o.expect_workers_max_wait or 0),
            master_endpoint=f"tcp://{bracket(o.master_host)}:{o.master_port}",
            master_bind_endpoint=bind_endpoint,
            master_keys=master_keys,
            worker_keys=worker_keys,
            loglevel=o.loglevel,
            logfile=o.logfile,
            log_format=o.log_format,
            stats_interval=float(o.stats_interval),
            heartbeat_interval=float(o.heartbeat_interval),
            heartbeat_timeout=float(o.heartbeat_timeout),
            connect_timeout=float(o.connect_timeout),
            bundle_max_bytes=int(o.bundle_max_mb * 1024 * 1024),
            max_stats_entries=int(o.max_stats_entries),
            iterations=int(o.iterations or 0),
            # the master's own timer; with the web UI the page's start sets its own (lcore.exporters.web)
            run_time=(o.run_time or None) if not o.worker and (o.headless or o.autostart) else None,
            headless=bool(o.headless),
            skip_log_setup=bool(getattr(o, "skip_log_setup", False)),
            no_web=bool(o.no_web),
            web_login=bool(o.web_login),
            web_base_path=o.web_base_path or "",
            arrival_rate=o.arrival_rate,
            max_rps=o.max_rps,
            num_users=o.num_users,
        )

    def setup_logging(self, role: str) -> None:
        """lcore's log format for this process, unless --skip-log-setup (as Locust's)."""
        if not self.skip_log_setup:
            setup_logging(self.loglevel, self.logfile, role, self.log_format)

    @contextmanager
    def run_directory(self) -> Iterator[str]:
        """A private directory for the master's ipc socket, removed when the test is over."""
        rundir = tempfile.mkdtemp(prefix="lcore-")
        os.chmod(rundir, 0o700)  # the ipc socket is reachable only by the user who started it
        try:
            yield rundir
        finally:
            shutil.rmtree(rundir, ignore_errors=True)


def _curve_keys(path: str | None, worker: bool) -> tuple[Any, Any]:
    """(the master's keys, the workers' keys) from --curve-keys DIR, read before any fork."""
    if not path:
        return None, None
    from lcore.curve import CurveError, load_master_keys, load_worker_keys, local_worker_keys

    try:
        if worker:
            return None, load_worker_keys(path)
        master_keys = load_master_keys(path)
        return master_keys, local_worker_keys(master_keys)
    except CurveError as e:
        raise OptionsError(str(e)) from None
