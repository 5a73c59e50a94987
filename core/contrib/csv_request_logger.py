"""One CSV row per request: Locust's ``locust.contrib.csv_request_logger``, for lcore's processes.

    logger = CsvRequestLogger("requests.csv")

    @events.init.add_listener
    def on_init(environment, **kwargs):
        logger.register(environment)

Columns (``CSV_COLUMNS``): the request's start (Unix seconds), its type and name, the
response time in ms (2 decimals), the response length, the HTTP status (0 without an answer)
and the exception's text.

lcore runs every test with separate worker processes, even on one machine, and ``init``
fires in each of them. So the file is started (truncated, header written) where no request is
made or where the run is one process (the master, library mode, ``run_single_user``). Each
worker appends to it instead (and writes the header if the file is new, as on a remote
worker's own machine). A worker writes whole rows in one ``write`` on a file opened for
appending, so the workers' rows never interleave inside a line.
"""

from __future__ import annotations

import csv
import fcntl
import io
import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "timestamp",
    "request_type",
    "name",
    "response_time_ms",
    "response_length",
    "status_code",
    "exception",
)


def _status_code(response: Any, exception: Any) -> int:
    """The response's HTTP status, 0 when there is none (a connection error, another protocol)."""
    if exception is not None and response is None:
        return 0
    try:
        return int(response.status_code)
    except (AttributeError, TypeError, ValueError):
        return 0


def _appends(environment: Any) -> bool:
    """A worker of a distributed run: others write to the same file."""
    from ..runners import WorkerRunner

    return isinstance(getattr(environment, "runner", None), WorkerRunner)


class CsvRequestLogger:
    """Writes a row for each request of ``environment.events.request``, buffering
    ``flush_interval`` rows between writes (1: each row at once)."""

    def __init__(self, filepath: str, *, flush_interval: int = 1) -> None:
        self.filepath = filepath
        self.flush_interval = max(1, flush_interval)
        self._fd: int | None = None
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)
        self._pending = 0

    def register(self, environment: Any) -> None:
        """Listen to ``environment``'s requests and start the file (in an ``init`` listener)."""
        environment.events.request.add_listener(self._on_request)
        environment.events.quitting.add_listener(self._on_quitting)
        self._open(append=_appends(environment))
        log.debug("CsvRequestLogger: writing one row per request to %s", self.filepath)

    def close(self) -> None:
        """Write what is buffered and close the file; closing twice does nothing."""
        if self._fd is not None:
            self._flush()
            os.close(self._fd)
        self._fd = None
        self._pending = 0

    def _open(self, append: bool) -> None:
        self.close()
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        fd = os.open(self.filepath, flags, 0o644)
        # one header, however many processes start at once
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size == 0:
                self._writer.writerow(CSV_COLUMNS)
                os.write(fd, self._take())
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._fd = fd

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")

    def _flush(self) -> None:
        data = self._take()
        if data and self._fd is not None:
            os.write(self._fd, data)  # whole rows, one write: appends never split a row
        self._pending = 0

    def _on_request(
        self,
        *,
        request_type: str,
        name: str,
        response_time: float | None,
        response_length: int,
        exception: Any = None,
        response: Any = None,
        start_time: float | None = None,
        **kwargs: Any,
    ) -> None:
        if self._fd is None:
            return
        self._writer.writerow(
            [
                round(start_time if start_time is not None else time.time(), 6),
                request_type,
                name,
                round(response_time, 2) if response_time is not None else "",
                response_length,
                _status_code(response, exception),
                str(exception) if exception is not None else "",
            ]
        )
        self._pending += 1
        if self._pending >= self.flush_interval:
            self._flush()

    def _on_quitting(self, **kwargs: Any) -> None:
        self.close()
