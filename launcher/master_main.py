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

from lcore.exporters import thresholds
from lcore.exporters.push import PeriodicPusher, build_outputs, push_interval
from lcore.master import MasterRuntime
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
    if runtime.listener_errors or runtime.calls.errors or runtime.handler_calls.errors:
        return 2  # as Locust: locustfile code on the master raised (logged when it did)
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


async def master_async(runtime: MasterRuntime, options: argparse.Namespace) -> int:
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
        if options.worker_count_expected:
            ok = await runtime.wait_for_workers(
                options.worker_count_expected, options.expect_workers_max_wait
            )
            if not ok and not runtime._quit_event.is_set():
                log.error(
                    "Gave up waiting for workers: %d of %d connected after %s s",
                    runtime.worker_count, options.worker_count_expected, options.expect_workers_max_wait,
                )  # fmt: skip
                await close_quietly(runtime)
                return 1
        if runtime.shape is not None:
            warn_shape_options(runtime.shape, options)
            runtime.start_shape()
        elif not runtime._quit_event.is_set():
            users = options.num_users if options.num_users is not None else 1
            rate = options.spawn_rate if options.spawn_rate is not None else 1
            log.info("Ramping to %d users at a rate of %g per second", users, rate)
            runtime.start(users, rate)

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

    results = final_reports(runtime, options, breaches)
    try:
        await runtime.close()
    except TaskFailed as e:
        log.error("The test ended early: %s", e)
        return 1
    return exit_code(runtime, options, results)


async def close_quietly(runtime: MasterRuntime) -> None:
    """On a way out that already failed: a task's death was logged when it died."""
    try:
        await runtime.close()
    except TaskFailed:
        pass


def final_reports(
    runtime: MasterRuntime, options: argparse.Namespace, breaches: Sequence[thresholds.Result] = ()
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
    if lost:
        print(
            f"{lost} worker(s) lost during the test: each may have had up to one stats interval "
            f"({options.stats_interval:g} s) of unreported results, which are missing from these figures",
            flush=True,
        )
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

            write_html_report(runtime, options.html_file)
        except ImportError:
            log.warning("--html is not available in this build")
    return results
