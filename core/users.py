"""Users and task sets: what a locustfile declares, and the loop each simulated user runs.

A user runs ``User._run_tasks`` in a greenlet (``user_runners`` lends it one, and takes it back
while the user waits long between tasks). The loop is written for the common case (a user
whose tasks are plain functions): one ``random.choice`` over a list expanded by weight, one
call, one wait, nothing allocated per iteration.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar, overload

import gevent
from gevent import GreenletExit

from . import rest as _rest
from .exception import (
    InterruptTaskSet,
    LocustError,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopUser,
)
from .http import FastHttpSession, HttpSession
from .schedule_lag import run_paced_task
from .user_lifecycle import (  # noqa: F401  (Locust's names, importable from here as before)
    LOCUST_STATE_RUNNING,
    LOCUST_STATE_STOPPING,
    LOCUST_STATE_WAITING,
    UserLifecycle,
)
from .wait_time import constant

log = logging.getLogger(__name__)


_Task = TypeVar("_Task", bound=Callable[..., Any])


@overload
def task(weight: _Task) -> _Task: ...
@overload
def task(weight: int = 1) -> Callable[[_Task], _Task]: ...
def task(weight: int | Callable[..., Any] = 1) -> Any:
    """``@task`` or ``@task(weight)``: mark a method of a User or TaskSet as a task."""

    def decorator(func: Callable[..., Any], weight: Any = weight) -> Callable[..., Any]:
        name = getattr(func, "__name__", "")
        if name in ("on_start", "on_stop"):
            # as Locust: almost always a mistake, the method then runs both ways
            log.warning(
                "You have tagged your on_stop/start function with @task. This will make the "
                "method get called both as a task AND on stop/start."
            )
        if name == "run":
            raise LocustError(
                "User.run() is a method used internally by lcore: do not override it or "
                "register it as a task"
            )
        func.locust_task_weight = weight  # type: ignore[attr-defined]
        return func

    if callable(weight):
        return decorator(weight, 1)
    return decorator


def tag(*tags: str) -> Callable[[Any], Any]:
    """``@tag("a", "b")`` on a task or a TaskSet class, for ``--tags`` / ``--exclude-tags``."""
    if not tags or callable(tags[0]):
        # `@tag` without parentheses, or `@tag()`
        raise ValueError("No tag name was supplied")
    for t in tags:
        if not isinstance(t, str):
            raise ValueError("tags must be strings")

    def decorator(obj: Any) -> Any:
        if hasattr(obj, "tasks"):
            # a TaskSet (or User) class: its tasks carry the tags, nested sets' tasks too
            obj.tasks = [decorator(t) for t in obj.tasks]
        else:
            if "locust_tag_set" not in obj.__dict__:
                obj.locust_tag_set = set()
            obj.locust_tag_set |= set(tags)
        return obj

    return decorator


def _collect_tasks(bases: tuple[type, ...], attrs: dict[str, Any]) -> list[Any]:
    """The class's task list, each task repeated by its weight (Locust's representation):
    the bases' tasks, then the class body's in declaration order — the ``tasks`` attribute
    (list, dict or (task, weight) tuples) where it stands among the ``@task`` methods, so
    that a SequentialTaskSet runs them as written."""
    tasks: list[Any] = []
    for base in bases:
        tasks.extend(getattr(base, "tasks", None) or [])
    for key, item in attrs.items():
        if key == "tasks":
            if item is None:
                continue
            for t, weight in item.items() if isinstance(item, dict) else map(_weighted, item):
                tasks.extend([t] * int(weight))
            continue
        weight = getattr(item, "locust_task_weight", None)
        if weight is not None:
            tasks.extend([item] * int(weight))
    return tasks


def _weighted(t: Any) -> tuple[Any, int]:
    return (t[0], t[1]) if isinstance(t, tuple) else (t, 1)


def no_tasks_message(holder: Any) -> str:
    """Locust's message for a User or TaskSet (class or instance) without tasks, with its
    hint when a ``task`` attribute was set instead of ``tasks``."""
    cls = holder if isinstance(holder, type) else type(holder)
    typo = bool(getattr(holder, "task", None))
    if issubclass(cls, User):
        hint = (
            ", but you have set a 'task' attribute on your class - maybe you meant to set 'tasks'?"
            if typo
            else "."
        )
        return (
            f"No tasks defined on {cls.__name__}{hint} Use the @task decorator or set the "
            "'tasks' attribute of the User (or mark it as abstract = True if you only intend "
            "to subclass it)"
        )
    hint = ", but you have set a 'task' attribute - maybe you meant to set 'tasks'?" if typo else "."
    return (
        f"No tasks defined on {cls.__name__}{hint} use the @task decorator or set the 'tasks' "
        "attribute of the TaskSet"
    )


class _TaskHolderMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        attrs["tasks"] = _collect_tasks(bases, attrs)
        attrs.setdefault("abstract", False)
        return super().__new__(mcs, name, bases, attrs)


def _is_taskset_class(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, TaskSet)


def _leaving(e: InterruptTaskSet) -> Exception:
    """What leaving a TaskSet through ``interrupt()`` means to its parent's loop."""
    return RescheduleTaskImmediately() if e.reschedule else RescheduleTask()


def _run_task(t: Any, holder: Any) -> None:
    if _is_taskset_class(t):
        t(holder).run()
    else:
        t(holder)


class TaskSet(metaclass=_TaskHolderMeta):
    """A group of tasks a user runs until ``interrupt()``; may nest."""

    tasks: ClassVar[list[Any]] = []
    abstract: ClassVar[bool] = True

    def __init__(self, parent: Any) -> None:
        self._parent = parent
        self._user: User = parent if isinstance(parent, User) else parent.user
        self._task_queue: list[Any] = []
        self._cp_last_run = time.monotonic()

    @property
    def user(self) -> User:
        """The User running this TaskSet (read-only, as in Locust)."""
        return self._user

    @property
    def parent(self) -> Any:
        """The TaskSet (or User) that started this one."""
        return self._parent

    def wait_time(self) -> float:
        """Seconds to wait after a task: the user's wait time, unless the TaskSet sets its own
        (``wait_time = between(1, 2)`` on the class)."""
        return self.user.wait_time()

    @property
    def client(self) -> Any:
        return self.user.client

    @property
    def environment(self) -> Any:
        return self.user.environment

    def on_start(self) -> None:
        pass

    def on_stop(self) -> None:
        pass

    def interrupt(self, reschedule: bool = True) -> None:
        raise InterruptTaskSet(reschedule)

    def schedule_task(self, task_callable: Any, first: bool = False) -> None:
        if first:
            self._task_queue.insert(0, task_callable)
        else:
            self._task_queue.append(task_callable)

    def get_next_task(self) -> Any:
        if not self.tasks:
            raise LocustError(no_tasks_message(self))
        return random.choice(self.tasks)

    def execute_next_task(self) -> None:
        """Run the first scheduled task (``schedule_task``), or a newly picked one."""
        self.execute_task(self._task_queue.pop(0) if self._task_queue else self.get_next_task())

    def execute_task(self, task_callable: Any) -> None:
        if getattr(task_callable, "__self__", None) is self:
            task_callable()  # a bound method, from a custom get_next_task
        else:
            _run_task(task_callable, self)

    def wait_time_value(self) -> float:
        return self.wait_time()

    def wait(self) -> None:
        self.user._sleep(self.wait_time_value())

    def run(self) -> None:
        self._begin()
        while True:
            if self._step():
                self._guard(self.wait)

    # The loop above in pieces, so that a user can also drive it one task at a time and
    # park between tasks (see User._run_tasks): a TaskSet's state then lives on the object.
    def _begin(self) -> None:
        try:
            self.on_start()
        except InterruptTaskSet as e:
            raise _leaving(e) from e

    def _step(self) -> bool:
        """Run the next task; True when the wait after it is due."""
        due: bool = self._guard(self._next_task)
        return due

    def _next_task(self) -> bool:
        if self.user._lifecycle.stop_requested:
            raise StopUser()
        t = self._task_queue.pop(0) if self._task_queue else self.get_next_task()
        nested = _is_taskset_class(t)
        lease = getattr(self.user.environment, "task_lease", None)
        if lease is not None and not nested:
            lease.take()  # -i/--iterations: StopUser once the test's task runs are taken
        try:
            if nested:  # its own tasks are the scheduled ones
                self.execute_task(t)
            else:
                run_paced_task(self.user, self.execute_task, t)
        except RescheduleTaskImmediately:
            return False
        except RescheduleTask:
            pass
        return True

    def _guard(self, action: Callable[..., Any], *args: Any) -> Any:
        """``action`` (a task, a wait) under the loop's rules: leaving or stopping runs
        ``on_stop``; another error is counted, and a wait is then due (True)."""
        try:
            return action(*args)
        except InterruptTaskSet as e:
            self._run_on_stop()
            raise _leaving(e) from e
        except (StopUser, GreenletExit):
            self._run_on_stop()
            raise
        except Exception as e:
            self.user._task_failed(e)
            return True

    def _drivable(self) -> bool:
        """The loop is ours (not overridden), so a user may run it task by task."""
        cls = type(self)
        return cls.run is TaskSet.run and cls.wait is TaskSet.wait

    def _run_on_stop(self) -> None:
        try:
            self.on_stop()
        except (StopUser, GreenletExit):
            raise
        except Exception as e:
            user = self.user
            user._task_failed(e)


class SequentialTaskSet(TaskSet):
    """Runs its tasks in declaration order, over and over."""

    abstract = True

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self._index = 0

    def get_next_task(self) -> Any:
        if not self.tasks:
            raise LocustError(no_tasks_message(self))
        t = self.tasks[self._index % len(self.tasks)]
        self._index += 1
        return t


class DefaultTaskSet(TaskSet):
    """Locust's root TaskSet, which runs a User's own tasks with the user as argument. lcore's
    User loop runs them itself, so this exists for code that imports or subclasses it
    (locust-plugins wraps its ``execute_task``; lcore's built-in -i counts those runs)."""

    abstract = True

    def get_next_task(self) -> Any:
        if not self.user.tasks:
            raise LocustError(no_tasks_message(self.user))
        return random.choice(self.user.tasks)

    def execute_task(self, task_callable: Any) -> None:
        _run_task(task_callable, self.user)


class User(metaclass=_TaskHolderMeta):
    """A simulated user. Subclass it, give it tasks and a wait time."""

    host: str | None = None
    weight: int = 1
    fixed_count: int = 0
    wait_time: Callable[..., float] = constant(0)
    tasks: ClassVar[list[Any]] = []
    abstract: ClassVar[bool] = True
    # HttpUser's HTTP client, a contrib user's protocol client (declared only: a User has none)
    client: Any
    # (intended start, interval, grid owner) of the next task, set by constant_pacing's wait:
    # the task then runs as a scheduled one (schedule_lag.run_paced_task)
    _lcore_due: tuple[float, float, Any] | None = None

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        # running, waiting, stopping, ended; asked to stop; inside a request (the engine's)
        self._lifecycle = UserLifecycle()
        self._taskset: TaskSet | None = None  # the top-level TaskSet being run, if any
        self._cp_last_run = time.monotonic()
        self._task_queue: list[Any] = []

    # the locustfile API -------------------------------------------------------------------
    def on_start(self) -> None:
        pass

    def on_stop(self) -> None:
        pass

    def context(self) -> dict[str, Any]:
        return {}

    @property
    def _state(self) -> str:
        """Locust's ``User._state``: running, waiting or stopping."""
        return self._lifecycle.state

    @_state.setter
    def _state(self, value: str) -> None:
        # Locust's loop raises StopUser before the next task once _state is "stopping", and
        # locustfiles (and Locust's own tests) stop a user that way
        if value == LOCUST_STATE_STOPPING:
            self._lifecycle.request_stop()

    @property
    def greenlet(self) -> gevent.Greenlet[..., Any] | None:
        runner: gevent.Greenlet[..., Any] | None = self._lifecycle.greenlet
        return runner

    @property
    def group(self) -> Any:
        """The gevent Group ``start`` spawned this user in."""
        return getattr(self, "_group", None)

    @classmethod
    def fullname(cls) -> str:
        """The class's dotted path, e.g. ``my_package.my_module.MyUser`` (``<locals>`` left out)."""
        parts = f"{cls.__module__}.{cls.__qualname__}".split(".")
        return ".".join(p for p in parts if p != "<locals>")

    def start(self, group: Any) -> gevent.Greenlet[..., Any]:
        """Run this user in a new greenlet of ``group`` (Locust's User.start); returns it."""
        self._group = group
        greenlet: gevent.Greenlet[..., Any] = group.spawn(_run_user, self)
        self._lifecycle.run_on(greenlet)
        return greenlet

    def stop(self, force: bool = False) -> bool:
        """Stop a user started with ``start``: at once if ``force`` or while it waits (True),
        else once its current task is done (False), as Locust's User.stop."""
        life = self._lifecycle
        greenlet = life.greenlet
        if greenlet is None or greenlet.dead:
            return True
        if force or life.waiting:
            self._group.killone(greenlet)
            return True
        life.request_stop()
        return False

    def wait(self) -> None:
        self._sleep(self.wait_time())

    def schedule_task(self, task_callable: Any, first: bool = False) -> None:
        if first:
            self._task_queue.insert(0, task_callable)
        else:
            self._task_queue.append(task_callable)

    # the engine's side ----------------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        life = self._lifecycle
        life.begin_wait()
        try:
            gevent.sleep(seconds)
        finally:
            life.end_wait()
        if life.stop_requested:
            raise StopUser()

    def _task_failed(self, error: BaseException) -> None:
        env = self.environment
        catch = getattr(env, "catch_exceptions", True)
        if getattr(error, "_lcore_counted", False):
            # re-raised by an inner TaskSet (catch_exceptions=False): counted there already
            if not catch:
                raise error
            return
        tb = error.__traceback__
        env.events.user_error.fire(user_instance=self, exception=error, tb=tb)
        text = "".join(traceback.format_exception(type(error), error, tb))
        recorder = getattr(env, "exception_recorder", None)
        if recorder is not None:
            recorder(str(error) or repr(error), text)
        if not catch:
            try:
                error._lcore_counted = True  # type: ignore[attr-defined]
            except AttributeError:
                pass
            raise error
        log.error("%s\n%s", error, text)

    def run(self) -> None:
        """Run tasks until stopped (the loop ``run_single_user`` and custom runners call)."""
        try:
            self._run_tasks(None)
        except GreenletExit:
            pass

    def _run_tasks(self, park: Callable[[User, float], bool] | None, resumed: bool = False) -> None:
        """The task loop. ``park(user, seconds)`` may take over a wait between top-level tasks
        (returning True): the loop then returns, and the engine calls it again with
        ``resumed=True`` when the wait is over. Without ``park`` it runs until the user stops.

        A GreenletExit (a kill) runs ``on_stop`` and is raised again; a StopUser ends quietly.
        """
        parked = False
        try:
            if not resumed:
                if not self.tasks:
                    raise LocustError(no_tasks_message(self))
                try:
                    self.on_start()
                except (StopUser, GreenletExit):
                    raise
                except Exception as e:
                    self._task_failed(e)
            choice = random.choice
            queue = self._task_queue
            lease = getattr(self.environment, "task_lease", None)
            life = self._lifecycle
            while True:
                if self._taskset is not None:
                    seconds = self._taskset_turn()
                    if seconds is None:
                        continue
                else:
                    if life.stop_requested:
                        raise StopUser()
                    t = queue.pop(0) if queue else choice(self.tasks)
                    try:
                        if _is_taskset_class(t):
                            taskset = t(self)
                            if taskset._drivable():
                                taskset._begin()
                                self._taskset = taskset
                                continue
                            taskset.run()
                        else:
                            if lease is not None:
                                lease.take()
                            if self._lcore_due is None:
                                t(self)
                            else:  # constant_pacing's next slot: a scheduled task
                                run_paced_task(self, t, self)
                    except RescheduleTaskImmediately:
                        continue
                    except RescheduleTask:
                        pass
                    except InterruptTaskSet:
                        # interrupt() from a task directly on a User has no parent to return to
                        pass
                    except (StopUser, GreenletExit):
                        raise
                    except Exception as e:
                        self._task_failed(e)
                    seconds = self.wait_time()
                if park is not None and park(self, seconds):
                    parked = True
                    return
                if self._taskset is not None:
                    self._taskset._guard(self._sleep, seconds)  # stopping there runs its on_stop
                else:
                    self._sleep(seconds)
        except StopUser as e:
            self._lifecycle.stopped_by(e)
            self._finish()
        except GreenletExit:
            self._finish()
            raise
        finally:
            if not parked:
                self._lifecycle.end()
                self._release()

    def _taskset_turn(self) -> float | None:
        """One task of the top-level TaskSet; then the wait due: the set's own, or the user's
        once the set is left, or None for none."""
        taskset = self._taskset
        assert taskset is not None
        try:
            if not taskset._step():
                return None
            return taskset.wait_time_value()
        except RescheduleTaskImmediately:
            self._taskset = None
            return None
        except RescheduleTask:
            self._taskset = None
        except (StopUser, GreenletExit):
            raise
        except Exception as e:
            self._taskset = None
            self._task_failed(e)
        return self.wait_time()

    def _release(self) -> None:
        """The user is gone: let go of what it holds for itself (HttpUser: its connections),
        now rather than when the garbage collector gets to it."""

    def _finish(self) -> None:
        self._lifecycle.begin_stopping()  # on_stop's own requests (a logout) go through
        try:
            self.on_stop()
        except (StopUser, GreenletExit):
            pass
        except Exception as e:
            self._task_failed(e)


def _run_user(user: User) -> None:
    user.run()


class HttpUser(User):
    """A user with ``self.client``, an HTTP client on geventhttpclient (one keep-alive pool per user)."""

    abstract = True
    # client options, settable on the class as in Locust's FastHttpUser
    network_timeout: float = 60.0
    connection_timeout: float = 60.0
    max_redirects: int = 30
    max_retries: int = 0  # FastHttpUser's; lcore's client does not retry
    insecure: bool = True
    default_headers: dict[str, str] | None = None
    concurrency: int = 10
    # an HTTP proxy for every request of the user (HTTPS through CONNECT tunnels)
    proxy_host: str | None = None
    proxy_port: int | None = None
    # Set either (Locust's names on HttpUser and FastHttpUser) to one object on several classes
    # and their users share keep-alive connections: lcore keys a shared pool by that object and
    # takes its size from it (urllib3's maxsize, geventhttpclient's concurrency).
    pool_manager: Any = None
    client_pool: Any = None
    # Locust's HttpSession names requests by the path sent; FastHttpUser's client by the URL
    _session_class: type[HttpSession] = HttpSession

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.host is None:
            raise LocustError(
                "You must specify the base host. Either in the host attribute in the User class, "
                "or on the command line using the --host option."
            )
        self.client = self._session_class(
            base_url=self.host,
            request_event=environment.events.request,
            user=self,
            network_timeout=self.network_timeout,
            connection_timeout=self.connection_timeout,
            max_redirects=self.max_redirects,
            insecure=self.insecure,
            default_headers=self.default_headers,
            concurrency=self.concurrency,
            proxy_host=self.proxy_host,
            proxy_port=self.proxy_port,
            shared_pool=self.client_pool if self.client_pool is not None else self.pool_manager,
        )

    def _release(self) -> None:
        client = getattr(self, "client", None)  # a locustfile may have put its own client there
        # a shared pool's connections serve other users too
        if isinstance(client, HttpSession) and client.shared_pool is None:
            client.close()

    def rest(
        self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        """``with self.rest("POST", "/api", json={...}) as resp:`` — a JSON request whose
        parsed body is ``resp.js``; failed asserts in the block become failures (lcore.rest)."""
        return _rest.rest(self, method, url, headers, **kwargs)

    def rest_(self, method: str, url: str, name: str | None = None, **kwargs: Any) -> Any:
        """``rest`` with a cache-busting ``_=<ms>`` query parameter."""
        return _rest.rest_(self, method, url, name, **kwargs)


class FastHttpUser(HttpUser):
    """Locust's FastHttpUser: the same fast client as HttpUser here, with FastHttpSession's
    request names (the URL as given, where HttpUser's are the path sent)."""

    abstract = True
    _session_class = FastHttpSession


def is_user_class(obj: Any) -> bool:
    return (
        isinstance(obj, type) and issubclass(obj, User) and not obj.__dict__.get("abstract", False)
    )


def filter_tasks_by_tags(
    holder: type[TaskSet] | type[User],
    tags: Iterable[str] | None = None,
    exclude_tags: Iterable[str] | None = None,
    checked: dict[Any, bool] | None = None,
) -> None:
    """Keep only the tasks tagged with one of ``tags`` and none of ``exclude_tags``; a nested
    TaskSet is filtered the same way and kept if any of its tasks is (Locust's rules)."""
    include = set(tags) if tags is not None else None
    exclude = set(exclude_tags) if exclude_tags is not None else None
    if checked is None:
        checked = {}
    kept = []
    for t in holder.tasks:
        if t in checked:
            if checked[t]:
                kept.append(t)
            continue
        if hasattr(t, "tasks"):
            filter_tasks_by_tags(t, include, exclude, checked)
            # a TaskSet that picks its tasks itself (a MarkovTaskSet) has no list to filter
            keep = bool(t.tasks) or bool(getattr(t, "_markov_next", None))
        else:
            t_tags: set[str] = getattr(t, "locust_tag_set", set())
            keep = (include is None or bool(t_tags & include)) and not (
                exclude is not None and t_tags & exclude
            )
        checked[t] = keep
        if keep:
            kept.append(t)
    holder.tasks = kept
    if not kept and not getattr(holder, "_markov_next", None):
        log.warning("%s had no tasks left after filtering, instantiating it will fail!", holder.__name__)
