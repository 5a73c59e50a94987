"""Outputs that push: every ``interval`` each output sends the master's current series, and
once more when the test is over (k6's periodic flusher). Nothing here blocks the master's loop:
an output's ``push`` awaits its network I/O, and a failed push is logged, never raised (the
next push carries everything again: the series are cumulative).

    RemoteWrite  (exporters.remote_write)  Prometheus remote write 1.0
    OtlpMetrics  (exporters.otlp)          OpenTelemetry metrics over OTLP, through the SDK

``build_outputs(runtime, options)`` makes the ones the options ask for, on one registry of the
collector /metrics uses (the same series, built at push time).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import urllib.parse
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("lcore.push")

DEFAULT_INTERVAL = 5.0
PUSH_TIMEOUT = 10.0
"""The longest one push may take (a final one retries within twice this); shorter with a short
interval (``push_timeout``): a push should not outlast two intervals."""


def push_timeout(interval: float) -> float:
    return min(PUSH_TIMEOUT, max(2.0, 2 * interval))


class Output(Protocol):
    name: str

    async def push(self, final: bool = False) -> bool: ...

    async def close(self) -> None: ...


class FailureLog:
    """Says the first failure of an output and its recovery, not every failed push."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing = False
        self.failures = 0

    def failed(self, reason: str) -> None:
        self.failures += 1
        if not self.failing:
            self.failing = True
            log.warning("%s: push failed (%s); retrying every interval", self.name, reason)

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            log.info("%s: pushing again", self.name)


def redact_url(url: str) -> str:
    """``url`` without the password of its user part: what may be printed."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def label_name(key: str) -> str:
    """A --label key as a Prometheus label name: ``build-id`` -> ``build_id``, ``1x`` -> ``_1x``
    (what Prometheus does to OpenTelemetry attribute names); ``__`` is reserved, so ``__x`` ->
    ``label__x``."""
    name = _NOT_IN_NAMES.sub("_", key)
    if name[:1].isdigit():
        name = "_" + name
    if name.startswith("__"):
        name = "label" + name
    return name


_NOT_IN_NAMES = re.compile(r"[^a-zA-Z0-9_]")


def target_labels(runtime: Any, labels: Sequence[tuple[str, str]]) -> dict[str, str]:
    """What every pushed series carries: job and instance (as a scrape would add them, so the
    bundled Grafana dashboard finds them; a --label may replace them), the --label's, and
    run_id (lcore's: no --label replaces it)."""
    out = {"job": "lcore", "instance": socket.gethostname()}
    out.update((label_name(k), v) for k, v in labels if k)
    out["run_id"] = runtime.run_uid
    return out


class PeriodicPusher:
    def __init__(self, outputs: Sequence[Output], interval: float = DEFAULT_INTERVAL) -> None:
        self.outputs = list(outputs)
        self.interval = interval
        self._closing = asyncio.Event()

    async def run(self) -> None:
        """Push every interval until ``close()``; a push under way is finished, not cut."""
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._closing.wait(), self.interval)
            except asyncio.TimeoutError:
                await asyncio.gather(*(self._push(o) for o in self.outputs))

    async def _push(self, output: Output, final: bool = False) -> bool:
        """An output's push; one that raises (a bug, not a failed send) is logged, and the
        test goes on: an output never stops it."""
        try:
            return await output.push(final=final)
        except Exception:
            log.exception("%s: a push raised", output.name)
            return False

    async def close(self, running: asyncio.Task[Any] | None = None) -> None:
        """Stop ``running`` (the task of ``run()``) once its push is over, then make the final
        push of every output (the run's last figures) and let them go."""
        self._closing.set()
        if running is not None:
            done, _ = await asyncio.wait([running], timeout=push_timeout(self.interval) + 1)
            if not done:
                running.cancel()
        try:
            results = await asyncio.gather(*(self._push(o, final=True) for o in self.outputs))
            for output, ok in zip(self.outputs, results, strict=True):
                if not ok:
                    log.error("%s: the final push failed: the run's last figures are not there", output.name)
        finally:
            for output in self.outputs:
                try:
                    await output.close()
                except Exception:  # noqa: BLE001 - the run's results are written already
                    log.debug("closing %s failed", output.name, exc_info=True)


def push_interval(options: Any) -> float:
    """--push-interval, or OTEL_METRIC_EXPORT_INTERVAL (milliseconds) when only OTLP pushes."""
    interval = float(getattr(options, "push_interval", DEFAULT_INTERVAL) or DEFAULT_INTERVAL)
    otel_ms = os.environ.get("OTEL_METRIC_EXPORT_INTERVAL", "")
    if getattr(options, "otel", False) and not getattr(options, "prometheus_remote_write", None):
        try:
            if float(otel_ms) > 0:
                return float(otel_ms) / 1000
        except ValueError:
            pass
    return interval


def build_outputs(runtime: Any, options: Any) -> list[Output]:
    """The push outputs ``options`` ask for (none: an empty list). Raises ``ValueError`` with a
    one-line reason when one cannot start (a missing optional package)."""
    wanted_rw = getattr(options, "prometheus_remote_write", None)
    wanted_otel = bool(getattr(options, "otel", False))
    if not (wanted_rw or wanted_otel):
        return []
    from .prometheus import DEFAULT_BUCKETS, make_registry, parse_buckets

    buckets = DEFAULT_BUCKETS
    if getattr(options, "metrics_buckets", None):
        buckets = parse_buckets(options.metrics_buckets)
    registry = make_registry(runtime, buckets=buckets)
    timeout = push_timeout(push_interval(options))
    given = tuple(getattr(options, "labels", None) or [])

    def labels() -> dict[str, str]:  # read at every push: a new test gets a new run id
        return target_labels(runtime, given)

    outputs: list[Output] = []
    if wanted_rw:
        from .remote_write import RemoteWrite

        outputs.append(
            RemoteWrite(
                registry,
                wanted_rw,
                labels=labels,
                auth=getattr(options, "prometheus_remote_write_auth", None),
                token=getattr(options, "prometheus_remote_write_token", None),
                timeout=timeout,
            )
        )
    if wanted_otel:
        from .otlp import OtlpMetrics

        output = OtlpMetrics.from_environment(
            registry,
            labels=labels,
            endpoint=getattr(options, "_otlp_endpoint", None),
            start_time=lambda: runtime.start_time,
            timeout=timeout,
        )
        if output is not None:
            outputs.append(output)
    return outputs
