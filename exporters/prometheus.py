"""Prometheus ``/metrics``: a Collector that turns the master's merged state into metric families
at scrape time (no second copy to keep in sync), on a registry of its own.

Counters and the response-time histogram are per (method, name) only, so ``sum()`` over them is
the run's total. Quantiles cannot be summed, so the quantile gauges also carry the
"Aggregated" row (``method=""``, ``name="Aggregated"``), as the reports do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from lcore._version import __version__
from lcore.runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "QUANTILES",
    "LcoreCollector",
    "make_registry",
    "parse_buckets",
    "render",
]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) of the ``lcore_response_time_seconds`` buckets; +Inf is added."""
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)
MAX_ERROR_SERIES = 20
"""Distinct (method, name, error) series exported; later ones are counted as error="other"."""
MAX_ERROR_LABEL = 200
"""Characters of an error text kept in its label."""
OTHER_ERROR = "other"
RUNNER_STATES = (
    STATE_INIT,
    STATE_SPAWNING,
    STATE_RUNNING,
    STATE_STOPPING,
    STATE_STOPPED,
    STATE_CLEANUP,
    STATE_MISSING,
)
_ENTRY = ["method", "name"]
_WORKER = ["worker", "host"]


def parse_buckets(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,1"`` -> increasing bucket bounds in seconds; ``ValueError`` if not usable."""
    try:
        bounds = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"bucket bounds must be numbers in seconds, got {text!r}") from None
    _check_buckets(bounds)
    return bounds


def _check_buckets(bounds: Sequence[float]) -> None:
    if not bounds:
        raise ValueError("at least one bucket bound is needed")
    if any(not (math.isfinite(b) and b > 0) for b in bounds):
        raise ValueError("bucket bounds must be positive and finite (+Inf is always added)")
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise ValueError("bucket bounds must be strictly increasing")


class _ErrorSeries:
    """Which (method, name, error) triples get a series of their own.

    The most frequent are admitted, up to ``limit``, and stay admitted until the stats are
    reset: a series that moved in and out of "other" would make both counters go backwards.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[tuple[str, str, str]] = set()
        self._source: object = None

    def fold(self, errors: dict[tuple[str, str, str], Any]) -> dict[tuple[str, str, str], int]:
        if errors is not self._source:  # MergedStats.reset() starts a new dict
            self._source = errors
            self._admitted = set()
        admitted = self._admitted
        if len(admitted) < self.limit and len(errors) > len(admitted):
            candidates = sorted(
                (e for key, e in errors.items() if key not in admitted),
                key=lambda e: -e.occurrences,
            )
            for e in candidates[: self.limit - len(admitted)]:
                admitted.add((e.method, e.name, e.error))
        folded: dict[tuple[str, str, str], int] = {}
        for key, e in errors.items():
            label = _error_label(e.error) if key in admitted else OTHER_ERROR
            series = (e.method, e.name, label)
            folded[series] = folded.get(series, 0) + e.occurrences
        return folded


def _error_label(text: str) -> str:
    if len(text) <= MAX_ERROR_LABEL:
        return text
    return text[: MAX_ERROR_LABEL - 1] + "…"


class LcoreCollector(Collector):
    """Metric families over a ``MasterRuntime`` (``runtime.stats_merged``, workers, state).

    Runs in the master's event loop (aiohttp handlers call it), so it reads a consistent state.
    """

    def __init__(
        self,
        runtime: Any,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        quantiles: Sequence[float] = QUANTILES,
        max_error_series: int = MAX_ERROR_SERIES,
    ) -> None:
        _check_buckets(buckets)
        self.runtime = runtime
        self.buckets = tuple(buckets)
        self._bounds_us = [round(b * 1e6) for b in self.buckets]
        self._le = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
        self.quantiles = tuple(quantiles)
        self._quantile_labels = [floatToGoString(q) for q in self.quantiles]
        self._errors = _ErrorSeries(max_error_series)

    def describe(self) -> Iterable[Metric]:
        return []  # built at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._request_families()
        yield from self._schedule_families()
        yield from self._runner_families()
        yield from self._worker_families()

    # -- requests ------------------------------------------------------------------------

    def _request_families(self) -> Iterator[Metric]:
        stats = self.runtime.stats_merged
        requests = CounterMetricFamily(
            "lcore_requests", "Requests made, per method and name.", labels=_ENTRY
        )
        failures = CounterMetricFamily(
            "lcore_request_failures", "Requests that failed, per method and name.", labels=_ENTRY
        )
        sizes = CounterMetricFamily(
            "lcore_response_size_bytes",
            "Bytes of response bodies received, per method and name.",
            labels=_ENTRY,
        )
        times = HistogramMetricFamily(
            "lcore_response_time_seconds",
            "Response times, per method and name (HDR histogram: bucket bounds are resolved "
            "within 1/64 of their value).",
            labels=_ENTRY,
        )
        # a summary, not a gauge: only summaries may carry a "quantile" label (promtool)
        quantiles = SummaryMetricFamily(
            "lcore_response_time_quantile_seconds",
            'Response time quantiles over the whole run (window="run") or the last seconds '
            '(window="current"); _count and _sum cover the whole run either way. '
            'name="Aggregated" is every request together.',
            labels=[*_ENTRY, "window"],
        )
        for entry in stats.sorted_entries():
            count = entry.num_requests
            if not count:
                continue
            labels = [entry.method, entry.name]
            requests.add_metric(labels, count)
            failures.add_metric(labels, entry.num_failures)
            sizes.add_metric(labels, entry.total_content_length)
            histogram = entry.histogram
            cumulative = histogram.count_at_or_below(self._bounds_us)
            times.add_metric(
                labels,
                list(zip(self._le, [*cumulative, histogram.count], strict=True)),
                histogram.sum / 1e6,
            )
            self._add_quantiles(quantiles, labels, entry)
        if stats.num_requests:
            self._add_quantiles(quantiles, ["", "Aggregated"], stats.total)
        errors = CounterMetricFamily(
            "lcore_request_errors",
            f"Failed requests per error text; beyond {self._errors.limit} distinct series they "
            f'are counted as error="{OTHER_ERROR}".',
            labels=[*_ENTRY, "error"],
        )
        for (method, name, label), n in sorted(self._errors.fold(stats.errors).items()):
            errors.add_metric([method, name, label], n)
        exceptions = CounterMetricFamily(
            "lcore_task_exceptions", "Exceptions raised by tasks (not request failures)."
        )
        exceptions.add_metric([], sum(record.count for record in stats.exceptions.values()))
        total = stats.total
        rps = GaugeMetricFamily(
            "lcore_current_requests_per_second",
            "Requests per second over the last seconds, every request together.",
            value=total.current_rps,
        )
        fails = GaugeMetricFamily(
            "lcore_current_failures_per_second",
            "Failures per second over the last seconds, every request together.",
            value=total.current_fail_per_sec,
        )
        yield from (requests, failures, sizes, times, quantiles, errors, exceptions, rps, fails)

    def _add_quantiles(
        self, family: SummaryMetricFamily, labels: list[str], entry: Any, corrected: bool = False
    ) -> None:
        if corrected:
            run, current = entry.corrected_histogram, entry.current_corrected_histogram()
        else:
            run, current = entry.histogram, entry.current_histogram()
        for window, histogram in (("run", run), ("current", current)):
            label_values = {"method": labels[0], "name": labels[1], "window": window}
            if histogram.count:
                values = histogram.quantiles(self.quantiles)
                for q, value in zip(self._quantile_labels, values, strict=True):
                    family.add_sample(family.name, {**label_values, "quantile": q}, value / 1e6)
            # as Go's summaries: quantiles over a window, count and sum since the start
            family.add_metric([*labels, window], run.count, run.sum / 1e6)

    # -- schedules: coordinated omission ---------------------------------------------------

    def _schedule_families(self) -> Iterator[Metric]:
        stats = self.runtime.stats_merged
        times = HistogramMetricFamily(
            "lcore_corrected_response_time_seconds",
            "Response times from each request's intended start (coordinated omission: the lag "
            "of tasks that started behind their schedule added, a paced user's missed slots "
            "counted), per method and name; lcore_response_time_seconds where nothing was late.",
            labels=_ENTRY,
        )
        quantiles = SummaryMetricFamily(
            "lcore_corrected_response_time_quantile_seconds",
            "lcore_response_time_quantile_seconds from the intended starts.",
            labels=[*_ENTRY, "window"],
        )
        for entry in stats.sorted_entries():
            if not entry.num_requests:
                continue
            labels = [entry.method, entry.name]
            histogram = entry.corrected_histogram
            cumulative = histogram.count_at_or_below(self._bounds_us)
            times.add_metric(
                labels,
                list(zip(self._le, [*cumulative, histogram.count], strict=True)),
                histogram.sum / 1e6,
            )
            self._add_quantiles(quantiles, labels, entry, corrected=True)
        if stats.num_requests:
            self._add_quantiles(quantiles, ["", "Aggregated"], stats.total, corrected=True)
        dropped = CounterMetricFamily(
            "lcore_dropped_arrivals",
            "Open-model arrivals that were due while every user up to the ceiling was busy, "
            "per User class.",
            labels=["user_class"],
        )
        starts = CounterMetricFamily(
            "lcore_scheduled_starts",
            "Tasks started on a schedule (the open model's arrivals, paced users), per User class.",
            labels=["user_class"],
        )
        missed = CounterMetricFamily(
            "lcore_missed_slots",
            "Slots of paced users' schedules that went by while they were behind, per User class "
            "(counted in the corrected response times).",
            labels=["user_class"],
        )
        lag = SummaryMetricFamily(
            "lcore_schedule_lag_seconds",
            "How late scheduled tasks started against their schedule, per User class.",
            labels=["user_class"],
        )
        lag_max = GaugeMetricFamily(
            "lcore_schedule_lag_max_seconds",
            "The latest start against its schedule so far, per User class.",
            labels=["user_class"],
        )
        classes = set(stats.schedules) | set(stats.dropped_arrivals)
        classes |= {cls.__name__ for cls in self.runtime.environment.user_classes}
        for name in sorted(classes):
            dropped.add_metric([name], stats.dropped_arrivals.get(name, 0))
            tally = stats.schedules.get(name)
            if tally is None:
                continue
            starts.add_metric([name], tally.starts)
            missed.add_metric([name], tally.missed)
            values = tally.lag.quantiles(self.quantiles)
            for q, value in zip(self._quantile_labels, values, strict=True):
                lag.add_sample(lag.name, {"user_class": name, "quantile": q}, value / 1e6)
            lag.add_metric([name], tally.lag.count, tally.lag.sum / 1e6)
            lag_max.add_metric([name], tally.lag.max / 1e6)
        yield from (times, quantiles, dropped, starts, missed, lag, lag_max)

    # -- the test and its workers ------------------------------------------------------------

    def _runner_families(self) -> Iterator[Metric]:
        runtime = self.runtime
        info = InfoMetricFamily("lcore_build", "lcore's version.")
        info.add_metric([], {"version": __version__})
        state = GaugeMetricFamily(
            "lcore_runner_state",
            "1 for the test's current state, 0 for the others.",
            labels=["state"],
        )
        current = runtime.state
        for name in RUNNER_STATES if current in RUNNER_STATES else (*RUNNER_STATES, current):
            state.add_metric([name], 1.0 if name == current else 0.0)
        users = GaugeMetricFamily(
            "lcore_users", "Users running, per User class.", labels=["user_class"]
        )
        running = dict(runtime.user_classes_count)
        for cls in runtime.environment.user_classes:
            running.setdefault(cls.__name__, 0)
        for name, n in sorted(running.items()):
            users.add_metric([name], n)
        target = GaugeMetricFamily(
            "lcore_target_users", "Users the test ramps to.", value=runtime.target_user_count
        )
        rate = GaugeMetricFamily(
            "lcore_spawn_rate_users_per_second",
            "Users started (or stopped) per second while ramping.",
            value=runtime.spawn_rate or 0.0,
        )
        yield from (info, state, users, target, rate)
        if runtime.start_time is not None:
            yield GaugeMetricFamily(
                "lcore_test_start_time_seconds",
                "When the current test started, seconds since the epoch.",
                value=runtime.start_time,
            )

    def _worker_families(self) -> Iterator[Metric]:
        runtime = self.runtime
        by_state: dict[str, int] = dict.fromkeys(
            (STATE_INIT, STATE_SPAWNING, STATE_RUNNING, STATE_STOPPED, STATE_MISSING), 0
        )
        cpu = GaugeMetricFamily(
            "lcore_worker_cpu_usage_ratio",
            "CPU use of each worker process (1 is one core saturated).",
            labels=_WORKER,
        )
        warning = GaugeMetricFamily(
            "lcore_worker_cpu_warning",
            "1 once a worker exceeded the CPU threshold: its figures may be skewed.",
            labels=_WORKER,
        )
        users = GaugeMetricFamily("lcore_worker_users", "Users each worker runs.", labels=_WORKER)
        hosts: dict[str, str] = {}
        for node in runtime.workers.values():
            by_state[node.state] = by_state.get(node.state, 0) + 1
            labels = [node.id, node.host]
            hosts[node.id] = node.host
            cpu.add_metric(labels, node.cpu / 100.0)
            warning.add_metric(labels, 1.0 if node.cpu_warning else 0.0)
            users.add_metric(labels, node.user_count)
        for node in runtime.lost_workers:
            by_state[STATE_MISSING] += 1
            hosts.setdefault(node.id, node.host)
        workers = GaugeMetricFamily(
            "lcore_workers", "Workers by state (missing: lost during the test).", labels=["state"]
        )
        for name, n in by_state.items():
            workers.add_metric([name], n)
        reported = CounterMetricFamily(
            "lcore_worker_requests",
            "Requests each worker reported since the stats were last reset.",
            labels=_WORKER,
        )
        for worker_id, figures in sorted(runtime.stats_merged.per_worker.items()):
            reported.add_metric([worker_id, hosts.get(worker_id, "")], figures.num_requests)
        yield from (workers, cpu, warning, users, reported)


def make_registry(runtime: Any, **collector_options: Any) -> CollectorRegistry:
    """A registry of its own with lcore's collector and the master's process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LcoreCollector(runtime, **collector_options))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """The exposition (text format, or OpenMetrics if ``accept`` asks for it) and its type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
