"""lcore: a Locust-compatible, multiprocess-first load-testing engine.

Where things live (dependencies point down this list, never up):

    lcore                 the public locustfile API, re-exported lazily (importing lcore
                          imports nothing heavy and patches nothing)
    lcore.exception       exceptions;  lcore.event  event hooks;  lcore.wait_time
    lcore.histogram       log-linear response-time histogram (no gevent, no asyncio)
    lcore.stats_delta     the worker's recorder and the stats delta it ships (wire form)
    lcore.stats           the master's merged view of the deltas, Locust's stats interface
    lcore.schedule_lag    how late a scheduled task started: the coordinated-omission correction
    lcore.protocol        typed messages between master and workers (no gevent, no asyncio)
    lcore.log             logging set-up (text or JSON lines); worker logs rate-limited to the
                          master, its buffer
    lcore.run_ids         the run id logs and pushed metrics carry (pure)
    lcore.dispatch        how many users of each class each worker runs (pure)
    lcore.user_lifecycle  a user's states and stop requests: when it may be killed (pure)
    lcore.arrivals        the open model's schedule: arrival times, worker slots, class mix (pure)
    lcore.users           User, HttpUser, TaskSet, @task, @tag   (gevent side)
    lcore.http            the HTTP client on geventhttpclient      (gevent side); its
                          modules are the private package lcore._http, imported only here
    lcore.worker          the worker runtime                        (gevent)
    lcore.master          the master runtime                        (asyncio on gevent's hub)
    lcore.master_open     the master's part for the open model and --max-rps (asyncio)
    lcore.hub_loop        the master's asyncio loop, waiting through gevent's hub
    lcore.clock           the master's clock: real, or a MockClock that tests move (asyncio)
    lcore.greenlet_calls  where the master runs locustfile code: greenlets, never its loop;
                          its CPU-heavy work of its own: a native thread
    lcore.task_owner      owns the master's background tasks: one that dies stops the test
    lcore.spent           users that ended themselves: slots never refilled (pure)
    lcore.fd_limit        the open-file limit raised to the hard one (workers, the web server; pure)
    lcore.unreported      the bound on what lost workers did that no report carried (pure)
    lcore.iterations      -i/--iterations: task runs leased from the master (gevent side)
    lcore.user_config     --config-users: settings for user classes from JSON (pure)
    lcore.target          the embedded HTTP target for demos, tests and benchmarks
    lcore.compat          makes ``import locust`` resolve to lcore inside lcore's processes
    lcore.curve           CURVE key files for encrypted, authenticated workers
    lcore.bundle          the locustfile's tree packed for ``-f -`` workers (pure)
    lcore.bundle_server   the master's answers to ``-f -`` workers (asyncio; packs on a native thread)
    lcore.markov          MarkovTaskSet, @transition(s)             (gevent side)
    lcore.rest            the rest() helper of HttpUser for JSON APIs
    lcore.user_pool       starts and stops a process's users to match per-class targets
    lcore.user_runners    the greenlets users run on; idle users parked on timers
    lcore.open_pool       the open model on a worker: arrivals on schedule, a pool of users
    lcore.open_tasks      what one arrival runs: one task function (TaskSets entered, left)
    lcore.rate_cap        --max-rps: the gate each request waits at for its slot
    lcore.precise_timer   a hub timer to the microsecond (a timerfd; libev's are to the ms)
    lcore.task_tags       --tags / --exclude-tags re-applied from the declared tasks
    lcore.step_load       --step-load (Locust 1.x's Step Load mode) as a built-in shape
    lcore.web_ui          environment.web_ui on the master: the Flask app a locustfile extends
    lcore.pytest_users    pytest-style locustfiles: test_* functions as User classes
    lcore.pytest_plugin   the session/fastsession fixtures for pytest (a pytest11 entry point)
    lcore.contrib         users for other protocols (PostgreSQL, MQTT, Socket.IO, DNS, OpenAI,
                          MongoDB, Qdrant, Milvus), each on its extra's client library (gevent side)
    lcore.launcher        command line and process supervision (imports core, never imported by it)
    lcore.exporters       Prometheus, status page, reports (imports core, never imported by it)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily
    from .env import Environment
    from .event import events
    from .exception import (
        CatchResponseError,
        InterruptTaskSet,
        LocustError,
        RescheduleTask,
        RescheduleTaskImmediately,
        StopUser,
    )
    from .markov import MarkovTaskSet, transition, transitions
    from .shape import ArrivalRate, LoadTestShape, RampingArrivalRate
    from .single import run_single_user
    from .users import FastHttpUser, HttpUser, SequentialTaskSet, TaskSet, User, tag, task
    from .wait_time import between, constant, constant_pacing, constant_throughput, poisson

# public name -> module that defines it
_EXPORTS = {
    "User": "users",
    "HttpUser": "users",
    "FastHttpUser": "users",
    "TaskSet": "users",
    "SequentialTaskSet": "users",
    "MarkovTaskSet": "markov",
    "transition": "markov",
    "transitions": "markov",
    "task": "users",
    "tag": "users",
    "between": "wait_time",
    "constant": "wait_time",
    "constant_pacing": "wait_time",
    "constant_throughput": "wait_time",
    "poisson": "wait_time",
    "events": "event",
    "LoadTestShape": "shape",
    "ArrivalRate": "shape",
    "RampingArrivalRate": "shape",
    "run_single_user": "single",
    "Environment": "env",
    "StopUser": "exception",
    "RescheduleTask": "exception",
    "RescheduleTaskImmediately": "exception",
    "InterruptTaskSet": "exception",
    "CatchResponseError": "exception",
    "LocustError": "exception",
}

__all__ = [
    "__version__",
    "User",
    "HttpUser",
    "FastHttpUser",
    "TaskSet",
    "SequentialTaskSet",
    "MarkovTaskSet",
    "transition",
    "transitions",
    "task",
    "tag",
    "between",
    "constant",
    "constant_pacing",
    "constant_throughput",
    "poisson",
    "events",
    "LoadTestShape",
    "ArrivalRate",
    "RampingArrivalRate",
    "run_single_user",
    "Environment",
    "StopUser",
    "RescheduleTask",
    "RescheduleTaskImmediately",
    "InterruptTaskSet",
    "CatchResponseError",
    "LocustError",
]
assert set(__all__) == {"__version__", *_EXPORTS}  # one list, said twice for the type checkers


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # Submodules (lcore.runners, lcore.env ...) are reachable as attributes, like Locust's.
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'lcore' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
