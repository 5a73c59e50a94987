"""Environment: what a locustfile sees of the run (``self.environment``, ``events.init``'s argument)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .event import Events
from .event import events as global_events


class Environment:
    def __init__(
        self,
        *,
        user_classes: list[type] | None = None,
        shape_class: Any = None,
        tags: list[str] | None = None,
        exclude_tags: list[str] | None = None,
        events: Events | None = None,
        host: str | None = None,
        reset_stats: bool = False,
        stop_timeout: float | None = None,
        catch_exceptions: bool = True,
        parsed_options: Any = None,
        available_user_classes: dict[str, type] | None = None,
        available_shape_classes: dict[str, Any] | None = None,
        locustfile: str | None = None,
    ) -> None:
        self.user_classes = user_classes or []
        self.shape_class = shape_class
        self.tags = tags
        self.exclude_tags = exclude_tags
        self.events = events if events is not None else global_events
        self.host = host
        self.reset_stats = reset_stats
        self.stop_timeout = stop_timeout
        self.catch_exceptions = catch_exceptions
        self.parsed_options = parsed_options
        self.available_user_classes = available_user_classes or {}
        self.available_shape_classes = available_shape_classes or {}
        self.locustfile = locustfile
        self.runner: Any = None
        self.stats: Any = None
        self.web_ui: Any = None
        self.process_exit_code: int | None = None
        # set by the worker runtime: (message, traceback) -> None, counts task exceptions
        self.exception_recorder: Callable[[str, str], None] | None = None

    @property
    def user_classes_by_name(self) -> dict[str, type]:
        return {cls.__name__: cls for cls in self.user_classes}

    def create_local_runner(self) -> Any:
        """Users in this process, no master or workers (Locust's library mode)."""
        from .local_runner import LocalRuntime

        return LocalRuntime(self)

    def create_web_ui(self, *args: Any, **kwargs: Any) -> Any:
        """lcore's status page belongs to its master (``lcore`` without ``--headless``); in
        library mode there is none. Returns an object whose ``stop()`` does nothing."""
        import logging

        logging.getLogger(__name__).warning(
            "create_web_ui: lcore serves its status page from the master process; none in library mode"
        )
        self.web_ui = _NoWebUI()
        return self.web_ui

    def assign_host(self) -> None:
        """``--host`` overrides every user class's ``host`` attribute, as in Locust."""
        if self.host:
            for cls in self.user_classes:
                cls.host = self.host


class _NoWebUI:
    """Stands in for Locust's Flask web UI: false, so ``if environment.web_ui:`` skips it."""

    greenlet = None
    app = None

    def __bool__(self) -> bool:
        return False

    def stop(self) -> None:
        pass
