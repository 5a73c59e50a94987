"""Logging set-up in Locust's format, with the process's role (``locust.log.setup_logging`` too)."""

from __future__ import annotations

import logging
import socket
import sys


def setup_logging(loglevel: str = "INFO", logfile: str | None = None, role: str = "") -> None:
    hostname = socket.gethostname()
    who = f"{hostname}/{role}" if role else hostname
    fmt = f"[%(asctime)s] {who}/%(levelname)s/%(name)s: %(message)s"
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    level = getattr(logging, str(loglevel).upper(), None)
    root.setLevel(level if isinstance(level, int) else logging.INFO)
