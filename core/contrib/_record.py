"""How a contrib client times a call and records it, the way lcore's HTTP client does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..exception import (
    InterruptTaskSet,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopTest,
    StopUser,
)
from ..user_lifecycle import lifecycle_of

# exceptions a task raises to steer its user: they pass through a measured call
CONTROL_FLOW = (StopUser, StopTest, RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet)


class ContribError(Exception):
    """A call that returned normally but failed (an error code, an empty answer).

    Its message is what the failures table shows, so it says what went wrong in words.
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args[0]!r})" if self.args else type(self).__name__


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - started) * 1000


def fire(
    request_event: Any,
    request_type: str,
    name: str,
    response_time: float,
    response_length: int = 0,
    exception: BaseException | None = None,
    **extra: Any,
) -> None:
    """One request, with Locust's keyword arguments (listeners see ``context`` and friends)."""
    request_event.fire(
        request_type=request_type,
        name=name,
        response_time=response_time,
        response_length=response_length,
        exception=exception,
        context=extra.pop("context", {}),
        **extra,
    )


@contextmanager
def measure(
    request_event: Any, request_type: str, name: str, response_length: int = 0, user: Any = None
) -> Iterator[dict[str, Any]]:
    """Time the block and record it: a failure if it raised an ``Exception``, which is then
    swallowed, as Locust's ``EventHook.measure`` does (a task's StopUser and the like pass
    through unrecorded).

    The yielded dict is Locust's ``request_meta``: the block may set ``response_length``,
    ``response`` or ``exception`` in it.
    """
    meta: dict[str, Any] = {
        "request_type": request_type,
        "name": name,
        "response_length": response_length,
        "response": None,
        "context": {},
        "exception": None,
        "start_time": time.time(),
    }
    with in_request(user):  # a user told to stop raises StopUser here, nothing recorded
        started = time.perf_counter()
        try:
            yield meta
        except CONTROL_FLOW:
            raise  # the task's StopUser, RescheduleTask...: not a failed request
        except Exception as e:
            meta["exception"] = e
        meta["response_time"] = elapsed_ms(started)
    request_event.fire(**meta)


@contextmanager
def in_request(user: Any) -> Iterator[None]:
    """Mark ``user`` as inside a request for the block, as lcore's HTTP client does: a user
    being stopped is then let finish the call (and record it) rather than killed in the
    middle, and one already told to stop making requests makes none (``StopUser``)."""
    life = lifecycle_of(user)
    if life is None or life.in_request:
        yield  # no user, or a call inside a recorded call (socketio's call() emits)
        return
    life.check_request()
    life.enter_request()
    try:
        yield
    finally:
        life.leave_request()
