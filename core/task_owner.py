"""The owner of the master's background tasks (asyncio; Python 3.10 has no TaskGroup).

As trio's nursery owns its children: whoever starts a loop through ``TaskOwner.spawn`` learns
when it dies. A task that raises is logged once with its traceback and handed to
``on_failure`` (the master stops the test and quits with an error); ``close()`` cancels the
others, waits for them, and raises the first failure again so that it cannot go unnoticed.
A task that is cancelled, or returns, is simply forgotten.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskFailed(RuntimeError):
    """A background task of the master died; the message names it."""


class TaskOwner:
    def __init__(self, on_failure: Callable[[str, BaseException], None] | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_failure = on_failure
        self.failure: TaskFailed | None = None

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.Task[Any]:
        task = (loop or asyncio.get_running_loop()).create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        name = task.get_name()
        log.error("The master's %s died: %s", name, error, exc_info=error)
        if self.failure is None:
            self.failure = TaskFailed(f"the master's {name} died: {type(error).__name__}: {error}")
            self.failure.__cause__ = error
            if self._on_failure is not None:
                self._on_failure(name, error)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.failure is not None:
            raise self.failure
