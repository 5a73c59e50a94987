"""One user, in this process, printing every request: for stepping through a locustfile in a
debugger (``run_single_user(MyUser)`` or ``lcore -f FILE --run-single-user``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import gevent
from gevent.event import Event

from .env import Environment
from .event import events as global_events
from .runners import STATE_RUNNING, STATE_STOPPED, LocalRunner

if TYPE_CHECKING:
    from .users import User


class SingleUserRunner(LocalRunner):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)  # env.stats counts every request as soon as it completes
        self.user: Any = None

    @property
    def user_classes_count(self) -> dict[str, int]:
        if self.user is None or self.state != STATE_RUNNING:
            return {}
        return {type(self.user).__name__: 1}

    def quit(self) -> None:
        life = self.user._lifecycle if self.user is not None else None
        if life is not None and life.greenlet is not None:
            life.request_stop()
            life.greenlet.kill(block=False)

    stop = quit


@contextmanager
def _ctrl_c_sets() -> Iterator[Event]:
    """An Event that Ctrl-C sets (in the main thread): a KeyboardInterrupt raised inside
    gevent's hub would be printed there before the stop."""
    interrupted = Event()
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    except ValueError:  # not the main thread: Ctrl-C stays a KeyboardInterrupt
        yield interrupted
        return
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


class _Printer:
    def __init__(self, out: TextIO, include_length: bool, include_time: bool, include_context: bool) -> None:
        self.out = out
        self.include_length = include_length
        self.include_time = include_time
        self.include_context = include_context
        header = f"{'type':<8} {'name':<50} {'resp_ms':>8}"
        if include_length:
            header += f" {'length':>8}"
        if include_time:
            header += f" {'time':<26}"
        header += " exception"
        if include_context:
            header += " context"
        out.write(header + "\n")

    def __call__(self, request_type: str, name: str, response_time: float, response_length: int = 0,
                 exception: Any = None, start_time: float | None = None, context: Any = None, **_: Any) -> None:  # fmt: skip
        line = f"{request_type:<8} {name[:50]:<50} {response_time:>8.0f}"
        if self.include_length:
            line += f" {response_length or 0:>8}"
        if self.include_time:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start_time or time.time()))
            line += f" {stamp:<26}"
        line += f" {exception!r}" if exception else " "
        if self.include_context:
            line += f" {context or {}}"
        self.out.write(line + "\n")
        self.out.flush()


def _host_from_command_line() -> str | None:
    """``python locustfile.py -H http://...``: the host option of the script's command line
    (the rest of it is the script's business)."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-H", "--host")
    try:
        known, _ = parser.parse_known_args(sys.argv[1:])
    except SystemExit:  # "-H" without a value: leave it to the script
        return None
    host: str | None = known.host
    return host


# the environment of the last run_single_user, as Locust's ``locust.debug._env`` (a test or a
# debugging hook reads ``_env.single_user_instance`` to reach the running user)
_env: Environment | None = None


def run_single_user(
    user_class: type[User],
    include_length: bool = False,
    include_time: bool = False,
    include_context: bool = False,
    include_payload: bool = False,
    loglevel: str | None = "WARNING",
    environment: Environment | None = None,
    run_time: float | None = None,
    out: TextIO | None = None,
) -> SingleUserRunner:
    """Run one ``user_class`` user here until it stops, ``run_time`` passes or Ctrl-C."""
    if loglevel and not logging.getLogger().handlers:
        logging.basicConfig(level=loglevel)
    env = environment or Environment(
        user_classes=[user_class],
        events=global_events,
        # as Locust's run_single_user, which reads its options (-H/--host, LOCUST_HOST) itself
        host=_host_from_command_line()
        or os.environ.get("LCORE_HOST")
        or os.environ.get("LOCUST_HOST")
        or None,
    )
    env.assign_host(user_classes=[user_class])
    global _env
    _env = env
    runner = SingleUserRunner(env)
    printer = _Printer(out or sys.stdout, include_length, include_time, include_context)
    env.events.request.add_listener(printer)
    try:
        env.events.init.fire(environment=env, runner=runner, web_ui=None)
        runner.state = STATE_RUNNING
        env.events.test_start.fire(environment=env)
        user = user_class(env)
        runner.user = user
        env.single_user_instance = user  # where Locust's run_single_user leaves it
        greenlet = gevent.spawn(user.run)
        user._lifecycle.run_on(greenlet)
        with _ctrl_c_sets() as interrupted:
            try:
                waited: list[Event | gevent.Greenlet[..., Any]] = [greenlet, interrupted]
                gevent.wait(waited, timeout=run_time, count=1)
            except KeyboardInterrupt:
                pass
        if not greenlet.dead:
            user._lifecycle.request_stop(requests_too=True)
            greenlet.join(timeout=5)
            greenlet.kill(block=True)
        runner.state = STATE_STOPPED
        env.events.test_stop.fire(environment=env)
        runner.flush()
        env.events.quitting.fire(environment=env)
    finally:
        env.events.request.remove_listener(printer)
    return runner
