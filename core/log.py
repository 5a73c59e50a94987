"""Logging: the set-up in Locust's format (``locust.log.setup_logging`` too), and worker logs
forwarded to the master.

    worker: ``LogForwarder``, a handler on the root logger, hands WARNING and above to a
            ``send`` callable (the worker turns it into a protocol ``Log`` message) at most
            ``rate`` lines a second (a token bucket); lines over the limit are counted and the
            count goes with the next line sent, or alone (``flush_dropped``).
    master: ``LogBuffer`` keeps the last lines (the master's own, via ``LogCapture``, and every
            worker's) for the status page's Logs view and ``/logs``; memory is bounded.
    both:   ``--log-format json`` (``JsonFormatter``): one JSON object a line, with the process
            role, worker id and run id of ``LOG_CONTEXT``; a line a worker forwarded keeps its
            worker's id, logger and time on the master, and a traceback is a field, never lines.

No gevent, no asyncio here: master and worker share this module.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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
FORWARDED_LINE = "lcore_forwarded_line"
"""On the master, a worker's forwarded line as it came (a ``ForwardedLine``), for JSON logs."""
MASTER = "master"
LOG_FORMATS = ("text", "json")


@dataclass
class LogContext:
    """Who is logging, for JSON lines: set once per process (role, worker id) and when the
    master makes or sends a run id."""

    role: str = "local"  # "master", "worker", "launcher", "local" (one process, no master)
    worker_id: str | None = None
    run_id: str | None = None
    host: str = field(default_factory=socket.gethostname)


LOG_CONTEXT = LogContext()


@dataclass(frozen=True)
class ForwardedLine:
    worker_id: str
    host: str
    logger: str
    message: str
    traceback: str
    created: float


def _iso_time(seconds: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (UTC, ISO 8601), ``level``, ``role``,
    ``worker_id``, ``host``, ``logger``, ``message``, ``run_id``, and ``traceback`` / ``stack``
    when the record has them (newlines escaped, so a shipper reads one event per line)."""

    def __init__(self, context: LogContext = LOG_CONTEXT) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        context = self.context
        line: ForwardedLine | None = getattr(record, FORWARDED_LINE, None)
        if line is not None:  # a worker's line, as the worker logged it
            doc: dict[str, Any] = {
                "time": _iso_time(line.created or record.created),
                "level": record.levelname,
                "role": "worker",
                "worker_id": line.worker_id,
                "host": line.host,
                "logger": line.logger or "root",
                "message": line.message,
                "run_id": context.run_id,
            }
            if line.traceback:
                doc["traceback"] = line.traceback
            return json.dumps(doc, ensure_ascii=False, default=str)
        doc = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "role": context.role,
            "worker_id": context.worker_id,
            "host": context.host,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": context.run_id,
        }
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["traceback"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


# Locust's flag: set by greenlet_exception_logger's handler; a master ending with it set exits 2
unhandled_greenlet_exception = False


def greenlet_exception_logger(
    logger: logging.Logger, level: int = logging.CRITICAL
) -> Callable[[Any], None]:
    """Locust's handler for ``greenlet.link_exception``: logs the greenlet's exception (a
    ``sys.exit()`` in it at INFO) and sets ``unhandled_greenlet_exception``."""

    def exception_handler(greenlet: Any) -> None:
        global unhandled_greenlet_exception
        exc_info = greenlet.exc_info
        if exc_info and exc_info[0] is SystemExit:
            logger.log(min(logging.INFO, level), "sys.exit(%s) called", exc_info[1])
        else:
            logger.log(level, "Unhandled exception in greenlet: %s", greenlet, exc_info=exc_info)
        unhandled_greenlet_exception = True

    return exception_handler


def setup_logging(
    loglevel: str = "INFO", logfile: str | None = None, role: str = "", log_format: str = "text"
) -> None:
    hostname = socket.gethostname()
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    if log_format == "json":
        # the text format's "worker-3" is role "worker"; its id comes with the worker runtime
        LOG_CONTEXT.role = "worker" if role.startswith("worker") else (role or "local")
        handler.setFormatter(JsonFormatter())
        _route_stray_tracebacks()
    else:
        who = f"{hostname}/{role}" if role else hostname
        fmt = f"[%(asctime)s] {who}/%(levelname)s/%(name)s: %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for h in list(root.handlers):
        if not isinstance(h, (LogForwarder, LogCapture)):
            root.removeHandler(h)
    root.addHandler(handler)
    level = getattr(logging, str(loglevel).upper(), None)
    root.setLevel(level if isinstance(level, int) else logging.INFO)


def _route_stray_tracebacks() -> None:
    """With JSON logs, what Python and gevent would print across lines on stderr (warnings, an
    uncaught exception, a greenlet that died) goes through logging, as one JSON line."""
    logging.captureWarnings(True)
    stray = logging.getLogger("lcore.uncaught")

    def excepthook(kind: Any, value: Any, tb: Any) -> None:
        stray.critical("Uncaught exception: %s", value, exc_info=(kind, value, tb))

    sys.excepthook = excepthook
    gevent = sys.modules.get("gevent")
    if gevent is not None:  # a greenlet's death, which gevent's hub prints itself
        hub = gevent.get_hub()

        def print_exception(context: Any, kind: Any, value: Any, tb: Any) -> None:
            name = getattr(kind, "__name__", str(kind))
            stray.error("%s failed with %s", context, name, exc_info=(kind, value, tb))

        try:
            hub.print_exception = print_exception
        except AttributeError:  # a compiled hub that takes no attribute: keep gevent's
            pass


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


# send(level, logger name, message, lines dropped before this one, traceback) -> False if not
# sent; the traceback (and stack) travels apart from the message, so JSON logs keep it a field
SendLog = Callable[[str, str, str, int, str], "bool | None"]


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
            message, traceback = self._text(record)
            sent = self._send(record.levelname, record.name, message, dropped, traceback)
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
            if self._send("WARNING", "", "", dropped, "") is False:
                self.dropped += dropped
        except Exception:  # noqa: BLE001 - as in emit
            self.failed += 1
            self.dropped += dropped
        finally:
            self._busy = False

    def _text(self, record: logging.LogRecord) -> tuple[str, str]:
        """The message and the traceback (with the stack), each cut to size."""
        parts = []
        if record.exc_info:
            parts.append(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        return record.getMessage()[:MAX_MESSAGE_CHARS], "\n".join(parts)[:MAX_MESSAGE_CHARS]


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
