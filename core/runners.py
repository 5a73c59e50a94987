"""The runner classes a locustfile checks with ``isinstance`` and the states it compares against.

The real runtimes subclass these: ``lcore.master.MasterRuntime`` (asyncio),
``lcore.worker.WorkerRuntime`` (gevent), and the two ``LocalRunner`` ones, library mode's
``lcore.local_runner.LocalRuntime`` and ``lcore.single.SingleUserRunner``. What they share is
here: custom messages handed to their handlers (``Runner._deliver_message``), and, for the
local ones, recording into ``environment.stats`` and messages sent to themselves. Pure: neither
gevent nor asyncio (a caller passes its own way to spawn a concurrent handler).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stats import ExceptionRecord, MergedStats, StatsError

from .stats import RecordingStats

# the sender of the messages a local runner sends itself, and its stats' node
LOCAL = "local"

STATE_INIT = "ready"
STATE_SPAWNING = "spawning"
STATE_RUNNING = "running"
STATE_CLEANUP = "cleanup"
STATE_STOPPING = "stopping"
STATE_STOPPED = "stopped"
STATE_MISSING = "missing"


class CustomMessage:
    """What a ``register_message`` handler receives as ``msg``."""

    __slots__ = ("type", "data", "node_id")

    def __init__(self, msg_type: str, data: Any, node_id: str) -> None:
        self.type = msg_type
        self.data = data
        self.node_id = node_id


class Runner:
    """What every runner offers a locustfile."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        environment.runner = self
        self.state = STATE_INIT
        self.spawn_rate: float = 0.0
        self.target_user_count: int = 0
        self.cpu_warning_emitted = False
        self.custom_messages: dict[str, tuple[Callable[..., Any], bool]] = {}

    @property
    def stats(self) -> MergedStats:
        stats: MergedStats = self.environment.stats
        return stats

    @property
    def user_count(self) -> int:
        return sum(self.user_classes_count.values())

    @property
    def user_classes_count(self) -> dict[str, int]:
        return {}

    @property
    def user_classes(self) -> list[type]:
        return list(self.environment.user_classes)

    @property
    def target_user_classes_count(self) -> dict[str, int]:
        """Users per class once spawning is complete (the current target, split by weight)."""
        from .dispatch import UserClassSpec, class_totals

        classes = self.environment.user_classes
        if not classes or not self.target_user_count:
            return {c.__name__: 0 for c in classes}
        return class_totals([UserClassSpec.of(c) for c in classes], self.target_user_count)

    @property
    def errors(self) -> dict[tuple[str, str, str], StatsError]:
        return self.stats.errors

    @property
    def exceptions(self) -> dict[tuple[str, str], ExceptionRecord]:
        return self.stats.exceptions

    def register_message(
        self, msg_type: str, listener: Callable[..., Any], concurrent: bool = False
    ) -> None:
        """``listener(environment=..., msg=...)`` is called for every ``msg_type`` message."""
        if msg_type in self.custom_messages:
            raise ValueError(f"A message handler for {msg_type!r} is already registered")
        self.custom_messages[msg_type] = (listener, concurrent)

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        raise NotImplementedError

    def _deliver_message(
        self,
        msg_type: str,
        data: Any,
        sender: str,
        spawn: Callable[..., Any] | None = None,
        call: Callable[..., Any] | None = None,
    ) -> bool:
        """Hand a custom message from ``sender`` to the handler registered for its type:
        through ``spawn(handler, **kwargs)`` if it was registered ``concurrent`` and the
        runtime passes one, else ``call(handler, **kwargs)``, else called here. False when
        no handler is registered for it (the caller says so, or not)."""
        entry = self.custom_messages.get(msg_type)
        if entry is None:
            return False
        handler, concurrent = entry
        run = spawn if concurrent and spawn is not None else call
        msg = CustomMessage(msg_type, data, sender)
        if run is None:
            handler(environment=self.environment, msg=msg)
        else:
            run(handler, environment=self.environment, msg=msg)
        return True

    def start(self, user_count: int, spawn_rate: float, wait: bool = False) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def quit(self) -> None:
        raise NotImplementedError


class LocalRunner(Runner):
    """Users in this process, no master: requests are counted in ``environment.stats`` (a
    RecordingStats, kept if the environment has one) as they complete, and messages go to this
    runner's own handlers, at once, as Locust's LocalRunner.send_message does."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        stats = environment.stats
        if not isinstance(stats, RecordingStats):
            stats = RecordingStats(LOCAL)
        environment.record_into(stats)
        self.merged = stats
        self.recorder = stats.recorder

    def flush(self) -> None:
        """Merge what the recorder holds into ``environment.stats``."""
        self.merged.flush()

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None:
        self._deliver_message(msg_type, data, LOCAL)


class DistributedRunner(Runner):
    pass


class MasterRunner(DistributedRunner):
    pass


class WorkerRunner(DistributedRunner):
    pass
