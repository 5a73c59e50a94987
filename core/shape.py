"""LoadTestShape: a class in the locustfile that drives users and spawn rate over time."""

from __future__ import annotations

import time
from typing import Any, ClassVar


class LoadTestShape:
    """Subclass it and implement ``tick()`` returning ``(users, spawn_rate)``,
    ``(users, spawn_rate, user_classes)`` or ``None`` to end the test. The master calls it
    every second."""

    abstract: ClassVar[bool] = True
    use_common_options: ClassVar[bool] = False
    runner: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "abstract" not in cls.__dict__:
            cls.abstract = False

    def __init__(self) -> None:
        self.start_time = time.perf_counter()

    def reset_time(self) -> None:
        self.start_time = time.perf_counter()

    def get_run_time(self) -> float:
        return time.perf_counter() - self.start_time

    def get_current_user_count(self) -> int:
        return self.runner.user_count if self.runner is not None else 0

    def tick(self) -> tuple[int, float] | tuple[int, float, list[type]] | None:
        raise NotImplementedError("LoadTestShape subclasses must implement tick()")
