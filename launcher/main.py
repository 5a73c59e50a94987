"""``lcore``: the console script. Validates options, then forks and supervises the processes.

The launcher does not import the locustfile (it compiles it to catch syntax errors early) and
imports neither gevent nor asyncio: the processes it forks start clean.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from functools import partial

from lcore._version import __version__
from lcore.log import LOG_CONTEXT, setup_logging
from lcore.run_ids import new_run_id

from .options import OptionsError, find_locustfiles, parse_options, resolve_processes, validate
from .supervisor import Child, Supervisor

log = logging.getLogger("lcore.main")


def _error(message: str) -> int:
    sys.stderr.write(f"lcore: error: {message}\n")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keys"]:
        from .keys import keys_main

        return keys_main(argv[1:])
    if "--demo" in argv:
        from .demo import run_demo

        return run_demo(argv)
    try:
        options = parse_options(argv, partial=True)
        if getattr(options, "version", False):
            print(f"lcore {__version__}")
            return 0
        inspects = options.run_single_user or options.list_commands or options.show_task_ratio or options.show_task_ratio_json
        # '-': each worker process fetches the locustfile (and its directory) from the master
        fetched = options.locustfile == "-"
        if fetched and inspects:
            raise OptionsError("-f - (fetch the locustfile from the master) only runs a worker")
        if not fetched:
            # -f FILE, a name without .py, a directory or a comma-separated list (as Locust)
            options.locustfile = ",".join(find_locustfiles(options.locustfile))
        validate(options)
    except OptionsError as e:
        return _error(str(e))
    # --run-single-user runs its user in this process: no master, no workers
    role = "local" if options.run_single_user else "launcher"
    setup_logging(options.loglevel, options.logfile, role, options.log_format)

    from lcore.locustfile import LocustfileError, check_syntax

    try:
        if not fetched:
            for path in options.locustfile.split(","):
                check_syntax(path)
    except LocustfileError as e:
        return _error(str(e))

    if inspects:
        from .inspect import run_inspection

        return run_inspection(argv, options)
    return run_processes(argv, options)


def run_processes(argv: list[str], options: argparse.Namespace) -> int:
    from lcore.curve import CurveError, load_master_keys, load_worker_keys, local_worker_keys

    from .processes import run_master, run_worker

    o = options
    n_workers = resolve_processes(o.processes) if o.processes else (0 if o.master else 1)
    master_keys = worker_keys = None
    try:
        if o.curve_keys and o.worker:
            worker_keys = load_worker_keys(o.curve_keys)
        elif o.curve_keys:
            master_keys = load_master_keys(o.curve_keys)
            worker_keys = local_worker_keys(master_keys)
    except CurveError as e:
        return _error(str(e))
    if o.worker:
        endpoint = f"tcp://{_bracket(o.master_host)}:{o.master_port}"
        workers = [
            Child("worker", i, partial(run_worker, argv, o, endpoint, remote=True, index=i, curve=worker_keys))
            for i in range(max(1, n_workers))
        ]
        return Supervisor(None, workers).run()

    # the run id, made here so that the launcher's own lines carry it too; the master takes it
    o._run_uid = LOG_CONTEXT.run_id = new_run_id()
    rundir = tempfile.mkdtemp(prefix="lcore-")
    os.chmod(rundir, 0o700)  # the ipc socket is reachable only by the user who started the test
    try:
        ipc = f"ipc://{rundir}/master.sock"
        endpoints = [ipc]
        if o.master:
            # only a distributed master opens a port for workers on other machines; a local run
            # (one master and its own workers) speaks over the private ipc socket alone, as
            # Locust's local mode opens no port (--master-bind-port is accepted and unused)
            bind_host = o.master_bind_host or "*"
            endpoints.append(f"tcp://{_bracket(bind_host)}:{o.master_bind_port}")
        # headless: wait for the local workers, or for --expect-workers remote ones with --master
        # (without --master no other worker can join, so waiting for more would never end)
        o.worker_count_expected = o.expect_workers if o.master else max(n_workers, 1)
        master = Child("master", 0, lambda: run_master(argv, o, endpoints, curve=master_keys))
        workers = [
            Child("worker", i, partial(run_worker, argv, o, ipc, remote=False, index=i, curve=worker_keys))
            for i in range(n_workers)
        ]
        supervisor = Supervisor(master, workers)
        if not supervisor.start_master():
            # the master said why (a locustfile error, a port in use) and exited
            code = supervisor_master_exit(master)
            return code or 1
        return supervisor.run()
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def supervisor_master_exit(master: Child) -> int:
    from .supervisor import exit_code_of

    if not master.pid:
        return 1
    _, status = os.waitpid(master.pid, 0)
    master.pid = 0
    return exit_code_of(status)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


if __name__ == "__main__":
    sys.exit(main())
