"""The runner classes a locustfile checks with ``isinstance`` and the states it compares against.

The real runtimes subclass these: ``lcore.master.MasterRuntime`` (asyncio),
``lcore.worker.WorkerRuntime`` (gevent) and ``lcore.single.SingleUserRunner``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .stats import ExceptionRecord, MergedStats, StatsError

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

    def start(self, user_count: int, spawn_rate: float, wait: bool = False) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def quit(self) -> None:
        raise NotImplementedError


class LocalRunner(Runner):
    pass


class DistributedRunner(Runner):
    pass


class MasterRunner(DistributedRunner):
    pass


class WorkerRunner(DistributedRunner):
    pass
