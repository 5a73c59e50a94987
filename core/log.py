"""Logging: the set-up in Locust's format (``locust.log.setup_logging`` too), and worker logs
forwarded to the master.

    worker: ``LogForwarder``, a handler on the root logger, hands WARNING and above to a
            ``send`` callable (the worker turns it into a protocol ``Log`` message) at most
            ``rate`` lines a second (a token bucket); lines over the limit are counted and the
            count goes with the next line sent, or alone (``flush_dropped``).
    master: ``LogBuffer`` keeps the last lines (the master's own, via ``LogCapture``, and every
            worker's) for the status page's Logs view and ``/logs``; memory is bounded.

No gevent, no asyncio here: master and worker share this module.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_CHARS = 4000
"""A forwarded line (with its traceback) is cut here, on the worker and again on the master."""
FORWARD_LEVEL = logging.WARNING
FORWARD_RATE = 10.0
"""Lines a second a worker forwards, on average ..."""
FORWARD_BURST = 50
"""... and at most this many at once."""
BUFFER_LINES = 1000
"""Lines the master keeps for the Logs view (its own and the workers', together)."""
SOURCE_ATTRIBUTE = "lcore_log_source"
"""A record carrying this attribute was forwarded by a worker; ``LogCapture`` skips it."""
FORWARDED_ATTRIBUTE = "lcore_forwarded"
"""Set on a record the forwarder handed to the master (``not_forwarded`` filters on it)."""
MASTER = "master"


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
        if not isinstance(h, (LogForwarder, LogCapture)):
            root.removeHandler(h)
    root.addHandler(handler)
    level = getattr(logging, str(loglevel).upper(), None)
    root.setLevel(level if isinstance(level, int) else logging.INFO)


def level_number(name: str) -> int:
    """A level name from the wire as a number; anything unknown counts as WARNING."""
    value = logging.getLevelName(str(name).upper())
    return value if isinstance(value, int) else logging.WARNING


# -- worker side -----------------------------------------------------------------------------


class TokenBucket:
    """``take()`` is True at most ``rate`` times a second on average, ``burst`` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# send(level, logger name, message, lines dropped before this one) -> False if not sent
SendLog = Callable[[str, str, str, int], "bool | None"]


def not_forwarded(record: logging.LogRecord) -> bool:
    """A filter for a local worker's own handlers: the master prints what reached it."""
    return not getattr(record, FORWARDED_ATTRIBUTE, False)


class LogForwarder(logging.Handler):
    """Hands WARNING and above to ``send``, rate limited. Never logs anything itself: a record
    logged while sending (the send's own failure) is counted as dropped, not forwarded, so a
    failing send cannot feed itself."""

    def __init__(
        self,
        send: SendLog,
        *,
        rate: float = FORWARD_RATE,
        burst: int = FORWARD_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(FORWARD_LEVEL)
        self._send = send
        self.bucket = TokenBucket(rate, burst, clock)
        self.dropped = 0
        """Lines over the limit not yet reported to the master."""
        self.dropped_total = 0
        self.failed = 0
        self._busy = False
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if self._busy or not self.bucket.take():
            self.dropped += 1
            self.dropped_total += 1
            return
        self._busy = True
        dropped, self.dropped = self.dropped, 0
        try:
            sent = self._send(record.levelname, record.name, self._text(record), dropped)
            if sent is False:
                self.dropped += dropped
            else:
                setattr(record, FORWARDED_ATTRIBUTE, True)
        except Exception:  # noqa: BLE001 - reporting it through logging would loop
            self.failed += 1
            self.dropped += dropped  # still to report
        finally:
            self._busy = False

    def flush_dropped(self) -> None:
        """Report lines dropped since the last line sent (the worker calls this every second)."""
        if not self.dropped or self._busy or not self.bucket.take():
            return
        self._busy = True
        dropped, self.dropped = self.dropped, 0
        try:
            if self._send("WARNING", "", "", dropped) is False:
                self.dropped += dropped
        except Exception:  # noqa: BLE001 - as in emit
            self.failed += 1
            self.dropped += dropped
        finally:
            self._busy = False

    def _text(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self._formatter.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        return text[:MAX_MESSAGE_CHARS]


# -- master side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: float
    source: str  # "master" or a worker id
    level: str
    name: str
    message: str

    def line(self) -> str:
        """The line as Locust's ``/logs`` shows it."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.time))
        name = f"/{self.name}" if self.name else ""
        return f"[{stamp}] {self.source}/{self.level}{name}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": round(self.time, 3),
            "source": self.source,
            "level": self.level,
            "name": self.name,
            "message": self.message,
        }


class LogBuffer:
    """The last ``limit`` lines, numbered (``since(seq)`` for a page that polls), and the
    count of lines each worker dropped over its rate limit."""

    def __init__(self, limit: int = BUFFER_LINES, clock: Callable[[], float] = time.time) -> None:
        self.entries: deque[LogEntry] = deque(maxlen=limit)
        self.dropped: dict[str, int] = {}
        self.clock = clock
        self._seq = 0

    def add(self, source: str, level: str, name: str, message: str) -> LogEntry:
        self._seq += 1
        entry = LogEntry(
            self._seq, self.clock(), source, level, name[:200], message[:MAX_MESSAGE_CHARS]
        )
        self.entries.append(entry)
        return entry

    def count_dropped(self, source: str, lines: int) -> None:
        if source not in self.dropped and len(self.dropped) >= 10_000:
            return  # bounded even against a worker that renames itself at every hello
        self.dropped[source] = self.dropped.get(source, 0) + lines

    def since(self, seq: int = 0) -> list[LogEntry]:
        return [e for e in self.entries if e.seq > seq]

    @property
    def last_seq(self) -> int:
        return self._seq


class LogCapture(logging.Handler):
    """The master's own lines into a ``LogBuffer`` (lines forwarded by workers are added by
    the master directly, with their worker, and skipped here)."""

    def __init__(self, buffer: LogBuffer, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.buffer = buffer
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, SOURCE_ATTRIBUTE):
            return
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + self._formatter.formatException(record.exc_info)
            self.buffer.add(MASTER, record.levelname, record.name, text)
        except Exception:  # noqa: BLE001 - never log from a log handler
            pass
