"""The run id: one per test, made by the master (or the launcher that forks it) and sent to the
workers, so that log lines, pushed metrics and stored results of one test carry the same id.

``new_run_id()`` is ``YYYYMMDD-HHMMSS-xxxxxx`` (UTC, then 24 random bits): ids sort by start
time as plain text, and read as a date. Pure: no gevent, no asyncio.
"""

from __future__ import annotations

import secrets
import time


def new_run_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"
