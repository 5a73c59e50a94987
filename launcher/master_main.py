"""The master process's asyncio main: serve, start the test, print and write reports, exit."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lcore import log as lcore_log
from lcore import unreported
from lcore.exporters import thresholds
from lcore.exporters.push import PeriodicPusher, build_outputs, push_interval
from lcore.master import MasterRuntime
from lcore.master_open import DEFAULT_ARRIVAL_CEILING
from lcore.runners import STATE_STOPPED
from lcore.step_load import StepLoadShape
from lcore.task_owner import TaskFailed

from .supervisor import notify_ready

log = logging.getLogger("lcore.main")



def _intervals() -> tuple[float, float]:
    """Locust's ``locust.stats`` knobs, as the locustfile left them (positive, or defaults)."""
    from lcore import stats

    def positive(name: str, default: float) -> float:
        try:
            value = float(getattr(stats, name, default))
        except (TypeError, ValueError):
            return default
        return value if value > 0 else default

    return positive("CONSOLE_STATS_INTERVAL_SEC", 2.0), positive("CSV_STATS_INTERVAL_SEC", 1.0)


async def _every(interval: float | Callable[[], float], fn: Any) -> None:
    while True:
        await asyncio.sleep(interval() if callable(interval) else interval)
        try:
            fn()
        except Exception:
            log.exception("periodic report failed")


def exit_code(
    runtime: MasterRuntime, options: argparse.Namespace, results: Sequence[thresholds.Result] = ()
) -> int:
    env = runtime.environment
    if env.process_exit_code is not None:
        return int(env.process_exit_code)
    if thresholds.failed(results):
        return thresholds.THRESHOLD_EXIT_CODE
    stats = runtime.stats_merged
    if stats.total.num_failures or stats.exceptions:
        return int(options.exit_code_on_error)
    if (
        runtime.listener_errors
        or runtime.calls.errors
        or runtime.handler_calls.errors
        or lcore_log.unhandled_greenlet_exception
    ):
        # as Locust: locustfile code on the master raised (logged when it did), or a greenlet
        # linked to greenlet_exception_logger died
        return 2
    return 0


def warn_shape_options(shape: Any, options: argparse.Namespace) -> None:
    """A LoadTestShape decides users, rate and duration (Locust's rule and warning)."""
    given = [
        flag
        for dest, flag in (("num_users", "--users"), ("spawn_rate", "--spawn-rate"), ("run_time", "--run-time"))
        if getattr(options, dest, None)
    ]
    if given and not getattr(shape, "use_common_options", False):
        log.warning(
            "--run-time, --users or --spawn-rate have no impact on LoadShapes unless the shape "
            "class explicitly reads them (use_common_options)"
        )
        log.warning("The following option(s) will be ignored: %s", ", ".join(given))


async def master_async(
    runtime: MasterRuntime, options: argparse.Namespace, worker_count_expected: int = 1
) -> int:
    """Serve, run the test as ``options`` (the locustfile's parsed_options) say, report, and
    return the exit code; headless, wait for ``worker_count_expected`` workers first."""
    from lcore.exporters import report_console, report_csv

    loop = asyncio.get_running_loop()
    try:
        await runtime.serve()
    except Exception as e:  # zmq.ZMQError for a port in use, a bad bind address
        endpoint = ", ".join(runtime.endpoints)
        log.error("Could not listen on %s: %s", endpoint, e)
        return 1
    loop.add_signal_handler(signal.SIGTERM, runtime.quit)
    web = None
    if not options.no_web:
        start_web: Callable[..., Awaitable[Any]] | None
        try:
            from lcore.exporters.web import start_web
        except ImportError:
            start_web = None
        if start_web is not None:
            try:
                web = await start_web(runtime, options)
            except OSError as e:
                where = f"{options.web_host or '*'}:{options.web_port}"
                if not options.headless:
                    log.error("Could not start the web server on %s: %s", where, e.strerror or e)
                    await close_quietly(runtime)
                    return 1
                # a headless test does not need its page: two runs can share a machine (Locust's
                # headless runs open no web port at all)
                log.warning(
                    "The status page and /metrics are off for this headless run: %s is taken "
                    "(%s); pass --web-port to choose another",
                    where,
                    e.strerror or e,
                )
    pusher = None
    try:
        outputs = build_outputs(runtime, options)
    except (ValueError, ImportError) as e:
        log.error("%s", e)
        if web is not None:
            await web.close()
        await close_quietly(runtime)
        return 1
    if outputs:
        pusher = PeriodicPusher(outputs, push_interval(options))
        push_task = runtime.owner.spawn(pusher.run(), "metrics push")
    try:
        recorder, skipped = open_results(runtime, options)
    except ResultsStartupError as e:
        log.error("%s", e)
        if pusher is not None:
            push_task.cancel()
        if web is not None:
            await web.close()
        await close_quietly(runtime)
        return 1
    notify_ready()

    if getattr(options, "step_load", False):
        if isinstance(runtime.shape, StepLoadShape):
            log.info("%s", runtime.shape.describe())
        else:
            log.warning("The locustfile has a LoadTestShape: --step-load is ignored")
    headless = bool(options.headless or options.autostart)
    if options.autostart and not options.headless and options.autoquit >= 0:

        def quit_later(state: str) -> None:
            if state == STATE_STOPPED:
                log.info("--autoquit: exiting in %d s", options.autoquit)
                loop.call_later(options.autoquit, runtime.quit)

        runtime.on_state_change.append(quit_later)
    stats = runtime.stats_merged
    periodic: list[asyncio.Task[Any]] = []
    csv_interval = _intervals()[1]
    if (headless or options.print_stats) and not options.only_summary:
        periodic.append(
            runtime.owner.spawn(
                _every(
                    # read at every table: locust-plugins' --console-stats-interval sets the
                    # knob in a test_start listener, after this loop has started
                    lambda: _intervals()[0],
                    lambda: print(
                        report_console.stats_table(stats, runtime.user_count), flush=True
                    ),
                ),
                "console table",
            )
        )
    history = None
    if options.csv_prefix:
        history = report_csv.StatsHistoryWriter(options.csv_prefix, full_history=options.stats_history_enabled)


        def write_csv() -> None:
            # as Locust: every file rewritten each interval, so a run that is killed still
            # leaves its figures so far
            history.write(stats, runtime.user_count)
            report_csv.write_csv_files(stats, options.csv_prefix)

        periodic.append(runtime.owner.spawn(_every(csv_interval, write_csv), "CSV writer"))

    breaches: list[thresholds.Result] = []
    if options.thresholds and options.threshold_abort:

        def check_thresholds() -> None:
            if not breaches:
                breaches.extend(thresholds.breached(options.thresholds, stats))
                for result in breaches:
                    print(result.line(), flush=True)
                if breaches:
                    runtime.quit()

        periodic.append(runtime.owner.spawn(_every(1.0, check_thresholds), "threshold check"))

    if headless:
        if worker_count_expected:
            ok = await runtime.wait_for_workers(worker_count_expected, options.expect_workers_max_wait)
            if not ok and not runtime._quit_event.is_set():
                log.error(
                    "Gave up waiting for workers: %d of %d connected after %s s",
                    runtime.worker_count, worker_count_expected, options.expect_workers_max_wait,
                )  # fmt: skip
                await close_quietly(runtime)
                return 1
        if runtime.shape is not None:
            warn_shape_options(runtime.shape, options)
            runtime.start_shape()
        elif not runtime._quit_event.is_set() and options.arrival_rate is not None:
            ceiling = options.num_users if options.num_users is not None else DEFAULT_ARRIVAL_CEILING
            log.info(
                "Open model: %g task runs per second, on at most %d concurrent users",
                options.arrival_rate, ceiling,
            )  # fmt: skip
            runtime.start_arrivals(options.arrival_rate, ceiling)
        elif not runtime._quit_event.is_set():
            users = options.num_users if options.num_users is not None else 1
            rate = options.spawn_rate if options.spawn_rate is not None else 1
            runtime.start(users, rate)
        if runtime.shape is None and not runtime._quit_event.is_set():
            if options.run_time:
                log.info("Run time limit set to %s seconds", options.run_time)
            else:
                log.info("No run time limit set, use CTRL+C to interrupt")

    await runtime.wait_quit()
    for task in periodic:
        task.cancel()
    if pusher is not None:
        # the run's final figures: merged by now (every worker stopped and sent its last delta)
        await pusher.close(push_task)
    if history is not None:
        history.write(stats, runtime.user_count)
        history.close()
    if web is not None:
        await web.close()

    results = final_reports(runtime, options, breaches, recorder)
    for line in skipped:
        print(line, flush=True)
    try:
        try:
            await runtime.close(release=False)
        except TaskFailed as e:
            log.error("The test ended early: %s", e)
            code = 1
        else:
            code = exit_code(runtime, options, results)
        log.info("Shutting down (exit code %d)", code)
        if recorder is not None:
            run_id = recorder.finish(code, thresholds.results_to_json(results))
            recorder.close()
            if run_id is not None:
                where = results_db_redact(recorder.where)
                print(f"Run saved as {run_id} in {where} (lcore runs show {run_id})", flush=True)
    finally:
        # last: remote workers wait for this connection to close before they exit
        runtime.release()
    return code


def results_db_redact(where: str) -> str:
    from lcore.exporters.results_db import redact

    return redact(where)


class ResultsStartupError(Exception):
    """The results store or the baseline asked for cannot be used: one line, exit 1."""


def open_results(runtime: MasterRuntime, options: argparse.Namespace) -> tuple[Any, list[str]]:
    """The recorder that saves this master's runs (None with --no-results-db), with the
    baseline's relative thresholds resolved in ``options.thresholds``; and the lines telling
    which relative thresholds had no baseline to compare with."""
    from lcore.exporters import results_db, results_record
    from lcore.exporters.results_writer import ResultsRecorder

    from .results_options import results_db_of

    where = results_db_of(options)
    if where is None:
        return None, []
    relative = [t for t in options.thresholds or () if t.relative is not None]
    try:
        store = results_db.open_store(where)
    except results_db.StoreError as e:
        if options.results_db or relative or options.baseline:
            raise ResultsStartupError(f"{e} (--no-results-db runs without it)") from e
        log.warning("This run is not saved: %s", e)  # the default path only: never fatal
        return None, []
    skipped: list[str] = []
    try:
        if relative or options.baseline:
            spec = options.baseline or "last"
            try:
                base = store.find_baseline(spec)
            except results_db.RunNotFound as e:
                raise ResultsStartupError(f"--baseline {spec}: {e}") from e
            if base is None:
                why = f"no finished run in {store.where} matches --baseline {spec} yet"
                skipped = thresholds.skipped_lines(relative, why)
                for line in skipped:
                    log.warning("%s", line)
            else:
                stats = results_record.restore_stats(base["results"])
                options.thresholds = thresholds.resolve_relative(options.thresholds, stats, base["id"])
                log.info("Baseline: run %s (started %s)", base["id"], _when(base["started"]))
                skipped = thresholds.skipped_lines(options.thresholds, f"run {base['id']} has no such requests")
    finally:
        store.close()

    def outcome() -> tuple[int | None, Any]:
        results = thresholds.evaluate(options.thresholds or [], runtime.stats_merged)
        return exit_code(runtime, options, results), thresholds.results_to_json(results)

    recorder = ResultsRecorder(
        where, runtime, options, labels=dict(options.labels or []), outcome=outcome
    )
    recorder.attach()
    return recorder, skipped


def _when(timestamp: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


async def close_quietly(runtime: MasterRuntime) -> None:
    """On a way out that already failed: a task's death was logged when it died."""
    try:
        await runtime.close()
    except TaskFailed:
        pass


def final_reports(
    runtime: MasterRuntime,
    options: argparse.Namespace,
    breaches: Sequence[thresholds.Result] = (),
    recorder: Any = None,
) -> list[thresholds.Result]:
    """The summary on stdout and the files asked for, from the master's merged stats."""
    from lcore.exporters import report_console, report_csv, report_json

    stats = runtime.stats_merged
    lost = len(runtime.lost_workers)
    print(report_console.stats_table(stats, runtime.user_count), flush=True)
    print(report_console.percentiles_table(stats), flush=True)
    behind = report_console.schedule_report(stats)
    if behind:
        print(behind, flush=True)
    errors = report_console.errors_table(stats)
    if errors:
        print(errors, flush=True)
    shares = runtime.unreported_bound()
    if lost:
        print(unreported.summary_line(shares, lost), flush=True)
    results = thresholds.evaluate(options.thresholds or [], stats, breaches)
    for line in thresholds.report_lines(results):
        print(line, flush=True)
    if options.junit_file:
        from lcore.exporters.report_junit import write_junit

        elapsed = (stats.last_request_timestamp or stats.start_time) - stats.start_time
        try:
            write_junit(results, options.junit_file, duration=elapsed)
        except OSError as e:
            log.error("Could not write %s: %s", options.junit_file, e.strerror or e)
    if options.csv_prefix:
        report_csv.write_csv_files(stats, options.csv_prefix)
    if options.json or options.json_file:
        document: Any = report_json.stats_to_json(stats)
        if options.thresholds:
            document = {
                "stats": document,
                "thresholds": thresholds.results_to_json(results),
                "schedules": report_json.schedules_to_json(stats),
                # Locust's list has no room for it; the object form has
                "unreported": report_json.unreported_to_json(shares),
            }
        if options.json_file:
            with open(
                options.json_file
                if options.json_file.endswith(".json")
                else options.json_file + ".json",
                "w",
            ) as f:
                json.dump(document, f, indent=4)
        if options.json:
            sys.stdout.write(json.dumps(document, indent=4) + "\n")
            sys.stdout.flush()
    if options.html_file:
        try:
            from lcore.exporters.report_html import write_html_report

            trend = None
            if recorder is not None and recorder.info is not None and options.report_trend:
                from lcore.exporters.results_trend import trend_for_report

                trend = trend_for_report(recorder, options.report_trend)
            write_html_report(runtime, options.html_file, trend=trend)
        except ImportError:
            log.warning("--html is not available in this build")
    return results
