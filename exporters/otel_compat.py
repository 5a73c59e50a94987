"""``locust.opentelemetry``: Locust's OpenTelemetry metrics, for code that sets them up itself.

``setup_opentelemetry(locustfile, profile)`` records what Locust's does, under Locust's
names, through the OpenTelemetry SDK (``pip install 'lcore[otel]'``):

    locust.client.duration   histogram (s) of every request of this process, attribute
                             ``name`` (the first MAX_REQUEST_NAMES names, then one for the
                             rest) and ``error.type`` for a failure
    locust.users.count       gauge of running users per ``user_class`` (the master's, or a
                             single process'; a worker reports none, as in Locust)

When no meter provider is set yet, one is made with the exporters ``--otel`` uses
(lcore.exporters.otlp.make_exporters: ``OTEL_METRICS_EXPORTER``, ``none`` for nothing, and the
usual ``OTEL_EXPORTER_OTLP_*`` variables); a provider set before (a test's in-memory reader) is
used as it is. Only metrics:
Locust also sets up traces, logs and library instrumentation here. lcore's own ``--otel``
exports the master's merged figures instead (lcore.exporters.otlp).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from lcore._version import __version__
from lcore.event import Events

from .otlp import make_exporters

log = logging.getLogger(__name__)

MAX_REQUEST_NAMES = 20
TOO_MANY_NAMES = "Too many unique request names"
request_names: set[str] = set()


def setup_opentelemetry(locustfile: str, profile: str | None, events: Events | None = None) -> bool:
    """Record Locust's OpenTelemetry metrics for ``events`` (default: the global events);
    False when the SDK is missing or every exporter is ``none``."""
    try:
        from opentelemetry import metrics
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        log.error("The OpenTelemetry SDK is not installed: pip install 'lcore[otel]'")
        return False
    if type(metrics.get_meter_provider()).__name__.startswith(("_Proxy", "NoOp")):
        try:
            exporters = make_exporters()
        except (ImportError, ValueError) as e:
            log.error("%s", e)
            return False
        if not exporters:
            log.info("No OpenTelemetry exporter configured (OTEL_METRICS_EXPORTER=none)")
            return False
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        resource = Resource.create({
            "service.name": os.getenv("OTEL_SERVICE_NAME", "locust"),
            "service.version": __version__,
            "filename": locustfile,
            "profile": profile or "",
        })  # fmt: skip
        readers = [PeriodicExportingMetricReader(e) for e in exporters]
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    meter = metrics.get_meter("locust")
    if events is None:
        # Locust's reads ``locust.events`` (which a test may have replaced), else lcore's
        events = getattr(sys.modules.get("locust"), "events", None) or _lcore_events()
    duration = meter.create_histogram(
        "locust.client.duration", unit="s", description="Time to last byte for requests"
    )

    def on_request(name: str, response_time: float | None, exception: Any, **kwargs: Any) -> None:
        if name not in request_names and len(request_names) < MAX_REQUEST_NAMES:
            request_names.add(name)
        attributes = {"name": name if name in request_names else TOO_MANY_NAMES}
        if exception:
            attributes["error.type"] = type(exception).__name__
        if response_time is not None:
            duration.record(response_time / 1000.0, attributes=attributes)

    def on_init(runner: Any = None, **kwargs: Any) -> None:
        from lcore.runners import WorkerRunner

        if runner is None or isinstance(runner, WorkerRunner):
            return  # a worker's users are the master's to count

        def observe(options: Any) -> Iterator[Any]:
            counts = getattr(runner, "reported_user_classes_count", None) or runner.user_classes_count
            for user_class, count in counts.items():
                yield metrics.Observation(count, {"user_class": user_class})

        meter.create_observable_gauge(
            "locust.users.count",
            callbacks=[observe],
            unit="{user}",
            description="Number of currently running Locust users",
        )

    events.request.add_listener(on_request)
    events.init.add_listener(on_init)
    return True


def _lcore_events() -> Events:
    from lcore import events

    return events
