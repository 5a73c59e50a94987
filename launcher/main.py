"""``lcore``: the console script. Builds the configuration (launcher/config.py: every option
checked before anything forks), then forks and supervises the processes.

The launcher does not import the locustfile (it compiles it to catch syntax errors early) and
imports neither gevent nor asyncio: the processes it forks start clean.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from functools import partial

from lcore._version import __version__
from lcore.log import LOG_CONTEXT
from lcore.run_ids import new_run_id

from .config import Config
from .options import OptionsError, parse_options
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
    if argv[:1] == ["runs"]:
        from .runs_cli import runs_main

        return runs_main(argv[1:])
    if "--demo" in argv:
        from .demo import run_demo

        return run_demo(argv)
    try:
        options = parse_options(argv, partial=True)
        if getattr(options, "version", False):
            print(f"lcore {__version__}")
            return 0
        config = Config.build(argv, options)
    except OptionsError as e:
        return _error(str(e))
    # --run-single-user runs its user in this process: no master, no workers
    role = "local" if options.run_single_user else "launcher"
    config.setup_logging(role)
    if config.worker and options.run_time:
        log.info("--run-time on a worker is ignored: its master ends the test")

    from lcore.locustfile import LocustfileError, check_syntax

    try:
        for path in config.locustfiles:
            check_syntax(path)
    except LocustfileError as e:
        return _error(str(e))

    if config.inspects:
        from .inspect import run_inspection

        return run_inspection(config)
    return run_processes(config)


def run_processes(config: Config) -> int:
    """Fork the master and the workers the configuration asks for, and supervise them."""
    from .processes import run_master, run_worker

    c = config
    if c.worker:
        workers = [
            Child("worker", i, partial(run_worker, c, c.master_endpoint, remote=True, index=i))
            for i in range(max(1, c.local_workers))
        ]
        return Supervisor(None, workers).run()

    # the run id, made here so that the launcher's own lines carry it too; the master takes it
    run_uid = LOG_CONTEXT.run_id = new_run_id()
    with c.run_directory() as rundir:
        ipc = f"ipc://{rundir}/master.sock"
        endpoints = [ipc] if c.master_bind_endpoint is None else [ipc, c.master_bind_endpoint]
        master = Child("master", 0, lambda: run_master(c, endpoints, run_uid))
        workers = [
            Child("worker", i, partial(run_worker, c, ipc, remote=False, index=i))
            for i in range(c.local_workers)
        ]
        supervisor = Supervisor(master, workers)
        if not supervisor.start_master():
            # the master said why (a locustfile error, a port in use) and exited
            code = supervisor_master_exit(master)
            return code or 1
        return supervisor.run()


def supervisor_master_exit(master: Child) -> int:
    from .supervisor import exit_code_of

    if not master.pid:
        return 1
    _, status = os.waitpid(master.pid, 0)
    master.pid = 0
    return exit_code_of(status)


if __name__ == "__main__":
    sys.exit(main())
