"""``lcore --demo``: the embedded target on loopback, the demo locustfile against it, 10 s."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Sequence


def _free_port(preferred: int = 0) -> int:
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def run_demo(argv: Sequence[str]) -> int:
    from . import main as launcher_main

    target = subprocess.Popen(
        [sys.executable, "-m", "lcore.target", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert target.stdout is not None
        line = target.stdout.readline()
        if "listening on" not in line:
            sys.stderr.write("lcore: error: the embedded target did not start\n")
            return 1
        url = line.rsplit(" ", 1)[-1].strip()
        import lcore

        assert lcore.__file__ is not None  # a regular package, not a namespace one
        locustfile = os.path.join(os.path.dirname(os.path.abspath(lcore.__file__)), "demo_locustfile.py")
        rest = [a for a in argv if a != "--demo"]
        # the demo must not fail because 5557 or 8089 is taken: it picks free ports unless told
        if not any(a.startswith("--master-bind-port") for a in rest):
            rest = ["--master-bind-port", str(_free_port()), *rest]
        if not any(a.startswith(("--web-port", "-P")) for a in rest):
            rest = ["--web-port", str(_free_port(8089)), *rest]
        demo_argv = [
            "-f",
            locustfile,
            "-H",
            url,
            "--headless",
            "--processes",
            "-1",
            "-u",
            "50",
            "-r",
            "25",
            "-t",
            "10s",
            *rest,
        ]
        print(
            f"lcore demo: 50 users against the embedded target at {url} for 10 s, one worker per core",
            flush=True,
        )
        code = launcher_main.main(demo_argv)
        with urllib.request.urlopen(f"{url}/__stats", timeout=5) as response:
            served = json.load(response)
        print(
            f"The target counted {served.get('total')} requests; compare with lcore's Aggregated row above.",
            flush=True,
        )
        return code
    finally:
        target.terminate()
        target.wait(timeout=10)
