"""``--otel`` / ``--out otlp=URL``: the /metrics series as OpenTelemetry metrics over OTLP,
through the OpenTelemetry SDK's exporters (``pip install 'lcore[otel]'``).

Configured as Locust's ``--otel`` is, by the standard variables: ``OTEL_METRICS_EXPORTER``
(``otlp`` — the default —, ``console``, ``none``), ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``
(``grpc`` — Locust's default — or ``http/protobuf``), and what the SDK's exporters read
themselves: ``OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT``, ``_HEADERS``, ``_TIMEOUT``,
``_COMPRESSION``, ``_CERTIFICATE``; ``OTEL_SERVICE_NAME`` (default ``lcore``) and
``OTEL_RESOURCE_ATTRIBUTES`` for the resource. Metrics only: Locust's traces and logs are not
exported.

Names and attributes are those of /metrics: a counter is a monotonic cumulative sum named as
its family (``lcore_requests``; a collector's Prometheus exporter adds ``_total`` back), the
response-time histogram keeps its bucket bounds, the quantiles are gauges with a ``quantile``
attribute. Each point also carries run_id, job, instance and the --label's, as remote write does.

The SDK's exporters block (requests, grpc): an export runs on a greenlet (the master's sockets
are gevent's, so it waits cooperatively), never on the master's loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial
from typing import Any

from lcore._version import __version__
from lcore.greenlet_calls import on_greenlet, on_native_thread

from .push import PUSH_TIMEOUT, FailureLog

log = logging.getLogger("lcore.push")

Offload = Callable[[Callable[[], Any]], Awaitable[Any]]
FAILING_FINAL_TIMEOUT = 2.0
INSTALL_HINT = "--otel needs the OpenTelemetry SDK: pip install 'lcore[otel]'"


def _env(*names: str, default: str = "") -> str:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return default


def _metrics_url(endpoint: str) -> str:
    """``--out otlp=URL`` for OTLP/HTTP: a URL without a path is a base, as
    OTEL_EXPORTER_OTLP_ENDPOINT is (``/v1/metrics`` is added); one with a path is used as is."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit(parts._replace(path="/v1/metrics"))
    return endpoint


def make_exporters(endpoint: str | None = None) -> list[Any]:
    """The SDK exporters OTEL_METRICS_EXPORTER asks for; ImportError with the install hint when
    the SDK (or the exporter of the protocol asked for) is missing."""
    wanted = [e.strip().lower() for e in _env("OTEL_METRICS_EXPORTER", default="otlp").split(",")]
    exporters: list[Any] = []
    for name in dict.fromkeys(w for w in wanted if w):
        if name == "none":
            continue
        try:
            if name == "console":
                from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

                exporters.append(ConsoleMetricExporter())
                continue
            if name != "otlp":
                log.warning("OTEL_METRICS_EXPORTER: unknown exporter %r, ignored", name)
                continue
            protocol = _env(
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL", default="grpc"
            ).lower()
            if protocol == "grpc":
                from grpc.experimental import gevent as grpc_gevent

                # grpc in a gevent-patched process: its waits must yield to the hub
                grpc_gevent.init_gevent()
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter as GrpcExporter,
                )

                exporters.append(GrpcExporter(endpoint=endpoint) if endpoint else GrpcExporter())
            elif protocol in ("http/protobuf", "http"):
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter as HttpExporter,
                )

                url = _metrics_url(endpoint) if endpoint else None
                exporters.append(HttpExporter(endpoint=url) if url else HttpExporter())
            else:
                raise ValueError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: lcore speaks grpc or http/protobuf"
                )
        except ImportError as e:
            raise ImportError(f"{INSTALL_HINT} ({e.name or e} is missing)") from None
    return exporters


class OtlpMetrics:
    name = "OTLP metrics"

    def __init__(
        self,
        registry: Any,
        exporters: Iterable[Any],
        *,
        labels: Callable[[], Mapping[str, str]] = dict,
        start_time: Callable[[], float | None] = lambda: None,
        offload: Offload = on_greenlet,
        cpu: Offload = on_native_thread,
        clock: Callable[[], float] = time.time,
        timeout: float = PUSH_TIMEOUT,
    ) -> None:
        from opentelemetry.sdk.resources import Resource

        self.registry = registry
        self.exporters = list(exporters)
        self.labels = labels
        self.start_time = start_time
        self.offload = offload  # the exporters' I/O: a greenlet's sockets wait on the hub
        self.cpu = cpu  # turning the families into the SDK's objects
        self.clock = clock
        self.timeout = timeout
        attributes: dict[str, Any] = {"service.version": __version__, "host.name": socket.gethostname()}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = "lcore"
        self.resource = Resource.create(attributes)
        self.failures = FailureLog(self.name)
        self.pushes = 0
        # the SDK's exporters must not export concurrently (and a cancelled wait leaves the
        # greenlet exporting): one push at a time
        self._lock = asyncio.Lock()
        if not log.isEnabledFor(logging.DEBUG):
            # its own line per retry of a failed export; FailureLog says it once
            logging.getLogger("opentelemetry.exporter").setLevel(logging.ERROR)

    @classmethod
    def from_environment(cls, registry: Any, *, endpoint: str | None = None, **kwargs: Any) -> OtlpMetrics | None:
        exporters = make_exporters(endpoint)
        if not exporters:
            log.info("OTEL_METRICS_EXPORTER=none: no OpenTelemetry metrics exported")
            return None
        return cls(registry, exporters, **kwargs)

    def metrics_data(self, families: list[Any] | None = None, labels: Mapping[str, str] | None = None) -> Any:
        """``families`` (default: the registry's, as they are now) as the SDK's MetricsData."""
        from opentelemetry.sdk.metrics.export import MetricsData, ResourceMetrics, ScopeMetrics
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        now = int(self.clock() * 1e9)
        started = self.start_time()
        start = int(started * 1e9) if started else now
        if families is None:
            families = list(self.registry.collect())
        extra = {k: v for k, v in (self.labels() if labels is None else labels).items() if v}
        metrics = [m for family in families if (m := _metric(family, extra, start, now))]
        # schema_url: none (its protobuf default, "")
        scope = ScopeMetrics(InstrumentationScope("lcore", __version__), metrics, "")
        return MetricsData([ResourceMetrics(self.resource, [scope], "")])

    async def push(self, final: bool = False) -> bool:
        # a final push to a receiver that already fails is not waited for as long: the SDK
        # retries until its timeout, and the run's exit would wait for it
        timeout = FAILING_FINAL_TIMEOUT if final and self.failures.failing else self.timeout
        if not final:
            return await self._locked_push(timeout)
        try:  # the SDK's retries may outlast the timeout it is given: the exit waits this long
            return await asyncio.wait_for(self._locked_push(timeout), timeout + 1)
        except asyncio.TimeoutError:
            self.failures.failed(f"no answer within {timeout + 1:g} s")
            return False

    async def _locked_push(self, timeout: float) -> bool:
        async with self._lock:
            return await self._push(timeout)

    async def _push(self, timeout: float) -> bool:
        # read on the loop (a consistent state, as a scrape reads it); converted off it
        families, labels = list(self.registry.collect()), dict(self.labels())
        data = await self.cpu(lambda: self.metrics_data(families, labels))
        ok = True
        for exporter in self.exporters:
            try:
                result = await self.offload(
                    partial(exporter.export, data, timeout_millis=timeout * 1000)
                )
            except Exception as e:  # noqa: BLE001 - an output never stops the test
                ok = False
                self.failures.failed(f"{type(e).__name__}: {e}")
                continue
            if getattr(result, "name", "SUCCESS") != "SUCCESS":
                ok = False
                self.failures.failed("the exporter reported a failure (see its log line)")
        if ok:
            self.pushes += 1
            self.failures.succeeded()
        return ok

    async def close(self) -> None:
        async with self._lock:
            for exporter in self.exporters:
                await self.offload(exporter.shutdown)


def _attributes(labels: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    out = dict(extra)
    out.update((k, v) for k, v in labels.items() if v != "")
    return out


def _metric(family: Any, extra: Mapping[str, str], start: int, now: int) -> Any:
    """One prometheus_client family as one SDK Metric (None when it has no sample)."""
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Gauge,
        Histogram,
        HistogramDataPoint,
        Metric,
        NumberDataPoint,
        Sum,
    )

    kind = family.type
    if kind == "histogram":
        points = _histogram_points(family, extra, start, now, HistogramDataPoint)
        data: Any = Histogram(points, AggregationTemporality.CUMULATIVE) if points else None
        name = family.name
    else:
        wanted = {
            "counter": (family.name + "_total",),
            "summary": (family.name,),  # the quantiles; _count and _sum are the histogram's
            "info": (family.name + "_info",),
        }.get(kind)
        points = [
            NumberDataPoint(_attributes(s.labels, extra), start, now, s.value)
            for s in family.samples
            if wanted is None or s.name in wanted
        ]
        name = family.name + ("_info" if kind == "info" else "")
        if not points:
            data = None
        elif kind == "counter":
            data = Sum(points, AggregationTemporality.CUMULATIVE, True)
        else:
            data = Gauge(points)
    if data is None:
        return None
    return Metric(name, family.documentation, family.unit or "", data)


def _histogram_points(family: Any, extra: Mapping[str, str], start: int, now: int, point: Any) -> list[Any]:
    grouped: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in family.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        entry = grouped.setdefault(tuple(sorted(labels.items())), {"buckets": [], "count": 0, "sum": 0.0})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            entry["count"] = int(s.value)
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    points = []
    for key, entry in grouped.items():
        cumulative = sorted(entry["buckets"])
        bounds = [le for le, _ in cumulative if le != float("inf")]
        counts, below = [], 0.0
        for _, n in cumulative:
            counts.append(int(n - below))
            below = n
        points.append(
            point(
                _attributes(dict(key), extra), start, now, entry["count"], entry["sum"],
                counts, bounds, None, None,
            )  # fmt: skip
        )
    return points
