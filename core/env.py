"""Environment: what a locustfile sees of the run (``self.environment``, ``events.init``'s argument)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import schedule_lag
from .event import Events
from .stats import RecordingStats
from .stats_delta import RequestStats

if TYPE_CHECKING:
    from .users import User


class Environment:
    def __init__(
        self,
        *,
        user_classes: list[type[User]] | None = None,
        shape_class: Any = None,
        tags: list[str] | None = None,
        exclude_tags: list[str] | None = None,
        events: Events | None = None,
        host: str | None = None,
        reset_stats: bool = False,
        stop_timeout: float | None = None,
        catch_exceptions: bool = True,
        parsed_options: Any = None,
        available_user_classes: dict[str, type[User]] | None = None,
        available_shape_classes: dict[str, Any] | None = None,
        locustfile: str | None = None,
    ) -> None:
        self.user_classes = user_classes or []
        self.shape_class = shape_class
        self.tags = tags
        self.exclude_tags = exclude_tags
        # as Locust: an Environment of its own has hooks of its own (the command line passes
        # the global `events` the locustfile registered its listeners on)
        self.events = events if events is not None else Events()
        self.host = host
        self.reset_stats = reset_stats
        if stop_timeout is None:
            stop_timeout = float(getattr(parsed_options, "stop_timeout", None) or 0.0)
        self.stop_timeout = stop_timeout
        self.catch_exceptions = catch_exceptions
        self.parsed_options = parsed_options
        self.available_user_classes = available_user_classes or {}
        self.available_shape_classes = available_shape_classes or {}
        self.locustfile = locustfile
        self.runner: Any = None
        self.web_ui: Any = None
        self.single_user_instance: Any = None  # the user run_single_user runs (Locust's)
        self.process_exit_code: int | None = None
        # (message, traceback) -> None: counts task exceptions; runtimes put their own here
        self.exception_recorder: Callable[[str, str], None] | None = None
        # --max-rps on a worker: the gate every request waits at (lcore.rate_cap); None: no cap
        self.rate_gate: Any = None
        # Requests are counted from the start, runner or not (a test that calls a user's
        # client directly reads them here). Runtimes that record elsewhere (a worker) or
        # merge others' figures (the master) replace both.
        self.stats: Any = RecordingStats()
        self.record_into(self.stats)
        self._validate_user_class_name_uniqueness()

    def record_into(self, stats: Any, recorder: RequestStats | None = None) -> None:
        """Count this environment's requests and task exceptions in ``recorder`` (by default
        the RecordingStats ``stats``'s own), and make ``stats`` what ``environment.stats``
        shows: a worker records into a RequestStats whose deltas it ships, and shows what it
        sent; library mode and ``run_single_user`` record into the view they show."""
        if recorder is None:
            recorder = stats.recorder
        self.stats = stats
        self.events.request.recorder = recorder.record
        self.exception_recorder = recorder.log_exception
        # scheduled starts (pacing, the open model) are tallied in the process' recorder
        schedule_lag.set_lag_sink(recorder.record_schedule)

    def _validate_user_class_name_uniqueness(self) -> None:
        names = [cls.__name__ for cls in self.user_classes]
        if len(set(names)) != len(names):
            raise ValueError(
                "The following user classes have the same class name: "
                + ", ".join(_fullname(cls) for cls in self.user_classes)
            )

    def assign_equal_weights(self) -> None:
        """Every user class weight 1, and its tasks the distinct task functions found in it
        and its (nested) TaskSets, each once: Locust's ``--equal-weights``."""
        for cls in self.user_classes:
            cls.weight = 1
            found: list[Any] = []
            frontier = list(cls.tasks)
            while frontier:
                t = frontier.pop()
                if isinstance(t, type) and hasattr(t, "tasks"):
                    frontier.extend(t.tasks)
                elif callable(t):
                    if t not in found:
                        found.append(t)
                else:
                    raise ValueError(f"Unrecognized task type in user {cls.__name__}: {t!r}")
            cls.tasks = found

    def _filter_tasks_by_tags(self) -> None:
        """Keep only the tasks ``tags``/``exclude_tags`` select, on every user class (once)."""
        if getattr(self, "_tasks_filtered", False):
            return
        self._tasks_filtered = True
        tags = self.tags if self.tags is not None else getattr(self.parsed_options, "tags", None)
        exclude = (
            self.exclude_tags
            if self.exclude_tags is not None
            else getattr(self.parsed_options, "exclude_tags", None)
        )
        if tags is None and exclude is None:
            return
        from .users import filter_tasks_by_tags

        for cls in self.user_classes:
            filter_tasks_by_tags(cls, tags, exclude)

    @property
    def user_classes_by_name(self) -> dict[str, type[User]]:
        return {cls.__name__: cls for cls in self.user_classes}

    def create_local_runner(self) -> Any:
        """Users in this process, no master or workers (Locust's library mode)."""
        from .exception import RunnerAlreadyExistsError
        from .local_runner import LocalRuntime

        if self.runner is not None:
            raise RunnerAlreadyExistsError(f"Environment.runner already exists ({self.runner})")
        runner = LocalRuntime(self)
        if self.shape_class is not None:
            self.shape_class.runner = runner
        return runner

    def create_web_ui(self, *args: Any, **kwargs: Any) -> Any:
        """lcore's status page belongs to its master (``lcore`` without ``--headless``); in
        library mode there is none. Returns an object whose ``stop()`` does nothing."""
        import logging

        logging.getLogger(__name__).warning(
            "create_web_ui: lcore serves its status page from the master process; none in library mode"
        )
        self.web_ui = _NoWebUI()
        return self.web_ui

    def assign_host(
        self, host: str | None = None, user_classes: list[type[User]] | None = None
    ) -> None:
        """``--host`` (``host``, which becomes this environment's, or the one it has) overrides
        the ``host`` attribute of every user class (or of ``user_classes``), as in Locust."""
        if host:
            self.host = host
        if self.host:
            for cls in self.user_classes if user_classes is None else user_classes:
                cls.host = self.host


def _fullname(cls: type) -> str:
    fullname = getattr(cls, "fullname", None)
    if callable(fullname):
        return str(fullname())
    return f"{cls.__module__}.{cls.__qualname__}"


class _NoWebUI:
    """Stands in for Locust's Flask web UI: false, so ``if environment.web_ui:`` skips it."""

    greenlet = None
    app = None

    def __bool__(self) -> bool:
        return False

    def stop(self) -> None:
        pass
