"""Event hooks with Locust's names and arguments.

``events`` is the process-wide instance a locustfile imports; ``Environment.events`` is the
same object. The ``request`` hook is special: the engine attaches a *recorder* to it (the
worker's statistics), so firing ``events.request`` by hand records the request exactly as the
HTTP client does, and the client can skip building keyword arguments when nobody else listens.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .exception import (
    InterruptTaskSet,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopTest,
    StopUser,
)

log = logging.getLogger(__name__)

Recorder = Callable[[str, str, float, int, Any], None]

_CONTROL_FLOW = (StopUser, StopTest, RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet)


class EventHook:
    """A list of listeners called in order with keyword arguments."""

    __slots__ = ("_handlers", "errors")

    def __init__(self) -> None:
        self._handlers: list[Callable[..., Any]] = []
        self.errors = 0  # listener calls that raised (an init listener's is fatal)

    def add_listener(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        self._handlers.append(handler)
        return handler

    def remove_listener(self, handler: Callable[..., Any]) -> None:
        self._handlers.remove(handler)

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None:
        handlers = reversed(self._handlers) if reverse else self._handlers
        for handler in list(handlers):
            try:
                handler(**kwargs)
            except _CONTROL_FLOW:
                raise  # a listener may stop the user or the test, or reschedule, as in Locust
            except Exception:
                # A broken listener must not take the caller (a user, the master) down.
                self.errors += 1
                log.error(
                    "Uncaught error in event handler %r:\n%s", handler, traceback.format_exc()
                )


class RequestEventHook(EventHook):
    """``events.request``: records into the engine's statistics, then calls listeners."""

    __slots__ = ("recorder",)

    def __init__(self) -> None:
        super().__init__()
        self.recorder: Recorder | None = None

    def fire(self, *, reverse: bool = False, **kwargs: Any) -> None:
        recorder = self.recorder
        if recorder is not None:
            recorder(
                kwargs.get("request_type", ""),
                kwargs.get("name", ""),
                kwargs.get("response_time") or 0,
                kwargs.get("response_length") or 0,
                kwargs.get("exception"),
            )
        if self._handlers:
            super().fire(reverse=reverse, **kwargs)

    @contextmanager
    def measure(
        self,
        request_type: str,
        name: str,
        response_length: int = 0,
        context: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Time the block and fire this event for it, as a client request is: ``with
        events.request.measure("grpc", "Say") as meta:``. An exception in the block makes it a
        failure and is not raised further (as Locust's); entries set in ``meta`` are passed on."""
        meta: dict[str, Any] = {
            "request_type": request_type,
            "name": name,
            "response_length": response_length,
            "context": context or {},
            "exception": None,
            "start_time": time.time(),
        }
        start = time.perf_counter()
        try:
            yield meta
        except Exception as e:
            meta["exception"] = e
        finally:
            meta["response_time"] = (time.perf_counter() - start) * 1000
            self.fire(**meta)


class Events:
    """All hooks, as attributes. Unknown attribute names raise, like Locust's."""

    request: RequestEventHook
    user_error: EventHook
    report_to_master: EventHook
    worker_report: EventHook
    worker_connect: EventHook
    spawning_complete: EventHook
    quitting: EventHook
    quit: EventHook
    init: EventHook
    init_command_line_parser: EventHook
    test_start: EventHook
    test_stopping: EventHook
    test_stop: EventHook
    reset_stats: EventHook
    cpu_warning: EventHook
    heartbeat_sent: EventHook
    heartbeat_received: EventHook
    usage_monitor: EventHook

    def __init__(self) -> None:
        for name, kind in self.__annotations__.items():
            setattr(self, name, RequestEventHook() if kind == "RequestEventHook" else EventHook())


events = Events()
