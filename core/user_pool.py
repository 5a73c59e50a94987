"""The users a process runs: start and stop them to match per-class targets (gevent side).

The pool owns its greenlets (one ``gevent.pool.Group``, run by ``UserRunners``, which also
parks users that wait long between tasks) and joins them when it stops.
Stopping is graceful then forceful: a waiting user is killed at once; a user in the middle
of a request finishes it (so the target's count and ours agree) and stops before its next.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import gevent
from gevent.pool import Group

from .exception import StopTest
from .user_runners import UserRunners, is_alive
from .users import User

log = logging.getLogger(__name__)

# how long a user inside a request may take to finish it once asked to stop
IN_REQUEST_GRACE = 30.0


class UserPool:
    def __init__(self, environment: Any, user_classes: Mapping[str, type[User]]) -> None:
        self.environment = environment
        self.user_classes = dict(user_classes)
        self.group = Group()
        self.runners = UserRunners(self.group)
        self.users: dict[str, list[User]] = {name: [] for name in self.user_classes}
        self._spawner: gevent.Greenlet[..., Any] | None = None
        # spawners (current or retired) inside a user's constructor (a DB connect may block
        # there), with the class; those whose user a new target left no room for
        self._constructing: dict[Any, str] = {}
        self._discard: set[Any] = set()
        self._failed_classes: set[str] = set()
        self.on_spawning_complete: Callable[[dict[str, int]], None] | None = None
        # users of each class that ended themselves in this run: spent, never started again
        self.ended: dict[str, int] = dict.fromkeys(self.user_classes, 0)
        self.on_user_ended: Callable[[User], None] | None = None
        self.on_stop_test: Callable[[str], None] | None = None
        self.runners.on_ended = self._user_ended

    def new_run(self) -> None:
        self.ended = dict.fromkeys(self.user_classes, 0)

    def _user_ended(self, user: User) -> None:
        name = type(user).__name__
        if name in self.ended:
            self.ended[name] += 1
        if self.on_user_ended is not None:
            self.on_user_ended(user)

    def counts(self) -> dict[str, int]:
        self._forget_ended()
        return {name: len(users) for name, users in self.users.items()}

    @property
    def user_count(self) -> int:
        self._forget_ended()
        return sum(len(users) for users in self.users.values())

    def _forget_ended(self) -> None:
        """Drop users that ended by themselves (StopUser). Checked when counted rather than
        with a link callback per greenlet, which would cost every user a closure."""
        for users in self.users.values():
            if any(u._lifecycle.done for u in users):
                users[:] = [u for u in users if not u._lifecycle.done]

    def set_targets(
        self,
        targets: Mapping[str, int],
        spread: float = 0.0,
        spent: Mapping[str, int] | None = None,
        ended_seen: Mapping[str, int] | None = None,
    ) -> None:
        """Fill ``targets[name]`` slots of each class: stop extras now, start the missing ones
        evenly over ``spread`` seconds. A slot whose user ended by itself is spent: ``spent``
        is the master's charge of those slots here, counting ``ended_seen`` of this pool's own
        endings; the endings it does not count yet are deducted too."""
        self._retire_spawner()
        self._discard = set()
        to_start: list[str] = []
        self._forget_ended()
        spent = spent or {}
        ended_seen = ended_seen or {}
        for name, users in self.users.items():
            unseen = max(0, self.ended.get(name, 0) - int(ended_seen.get(name, 0)))
            want = max(0, int(targets.get(name, 0)) - int(spent.get(name, 0)) - unseen)
            # users being constructed count: each joins its class when its constructor returns
            building = [g for g, cls_name in self._constructing.items() if cls_name == name]
            if len(users) + len(building) > want:
                # too many: those not started yet go first, then the most recently started
                excess = len(users) + len(building) - want
                self._discard.update(building[:excess])
                keep = len(building) - min(excess, len(building))
                self._stop_users(users[want - keep :])
                del users[want - keep :]
            else:
                to_start.extend([name] * (want - len(users) - len(building)))
        unknown = set(targets) - set(self.users)
        if unknown:
            log.error("Asked to run unknown user classes: %s", ", ".join(sorted(unknown)))
        if to_start:
            self._spawner = gevent.spawn(self._spawn, _interleave(to_start), spread)
        elif not self._constructing and self.on_spawning_complete is not None:
            # (else the retired spawner says so once its user is constructed)
            self.on_spawning_complete(self.counts())

    def join_spawning(self, timeout: float | None = None) -> None:
        """Wait until the users of the last target have been started (constructed)."""
        spawner = self._spawner
        if spawner is not None and spawner is not gevent.getcurrent():
            spawner.join(timeout)

    def _retire_spawner(self) -> None:
        """End the spawner of the previous target. One inside a user's constructor is not
        killed there (the exception would land in locustfile code, half-way through a connect):
        it finishes that user and then ends by itself."""
        spawner, self._spawner = self._spawner, None
        if spawner is not None and spawner not in self._constructing:
            spawner.kill(block=True)

    def _spawn(self, names: list[str], spread: float) -> None:
        me = gevent.getcurrent()
        gap = spread / len(names) if spread > 0 else 0.0
        start = time.monotonic()
        for i, name in enumerate(names):
            if gap:
                delay = start + i * gap - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)
            self._start_user(name)
            if self._spawner is not me:
                # retired while constructing: a new target's spawner (or none) goes on
                if self._spawner is None and self.on_spawning_complete is not None:
                    self.on_spawning_complete(self.counts())
                return
        self._spawner = None
        if self.on_spawning_complete is not None:
            self.on_spawning_complete(self.counts())

    def _start_user(self, name: str) -> None:
        cls = self.user_classes[name]
        me = gevent.getcurrent()
        self._constructing[me] = name
        try:
            user = cls(self.environment)
        except StopTest as e:
            # as Locust: HttpUser without a host raises StopTest from its constructor
            if self.on_stop_test is not None:
                self.on_stop_test(str(e) or "StopTest raised when starting a user")
            return
        except Exception as e:
            # counted as a task exception (exceptions table, exit code), logged in full once
            recorder = self.environment.exception_recorder
            if recorder is not None:
                recorder(str(e) or repr(e), traceback.format_exc())
            if name not in self._failed_classes:
                self._failed_classes.add(name)
                log.exception("Could not start a %s user", name)
            return
        finally:
            self._constructing.pop(me, None)
        if "_lifecycle" not in user.__dict__ or not hasattr(user, "environment"):
            # Locust's message: an __init__ that does not call the base constructor
            message = (
                f"Attribute 'environment' is missing on user {name}. Perhaps you defined your own "
                "__init__ and forgot to call the base constructor? (super().__init__(*args, **kwargs))"
            )
            recorder = self.environment.exception_recorder
            if recorder is not None:
                recorder(message, message)
            if name not in self._failed_classes:
                self._failed_classes.add(name)
                log.error("%s", message)
            return
        if me in self._discard:
            # a new target arrived while it was constructed, with no room for it
            self._discard.discard(me)
            return
        users = self.users[name]
        users.append(user)
        self.runners.start(user)

    def _stop_users(self, users: list[User]) -> None:
        if users:
            gevent.spawn(stop_users, users, self.environment.stop_timeout or 0, self.runners)

    def stop_all(self, timeout: float | None = None) -> None:
        """Stop every user and wait until they have all ended."""
        if self._spawner is not None:
            self._spawner.kill(block=True)
            self._spawner = None
        everyone = [u for users in self.users.values() for u in users]
        for users in self.users.values():
            users.clear()
        stop_users(
            everyone,
            self.environment.stop_timeout or 0 if timeout is None else timeout,
            self.runners,
        )
        self.runners.close_idle()
        self.group.join(timeout=5)
        self.group.kill(block=True, timeout=5)


def stop_users(users: list[User], stop_timeout: float, runners: UserRunners) -> None:
    """Graceful, then forceful. Returns when every one of ``users`` has ended."""
    for user in users:
        user._lifecycle.request_stop(requests_too=stop_timeout <= 0)
    deadline = time.monotonic() + stop_timeout
    # a request that never ends (a catch_response never closed, a huge timeout) must not hold
    # the test forever
    last_resort = deadline + IN_REQUEST_GRACE
    while True:
        alive = [u for u in users if is_alive(u)]
        if not alive:
            return
        now = time.monotonic()
        past_deadline = now >= deadline
        force = now >= last_resort
        for user in alive:
            life = user._lifecycle
            if past_deadline:
                life.deadline_passed()
            # a waiting user, or one that is not inside a request once the deadline passed,
            # is stopped now; one inside a request finishes it first (see user_lifecycle)
            if life.parked is not None:
                runners.wake_now(user)  # it sees the stop request first thing
            elif life.may_interrupt(past_deadline, force):
                runners.interrupt(user, past_deadline, force)
        gevent.sleep(0.01)


def _interleave(names: list[str]) -> list[str]:
    """Start classes interleaved (A B A B ...) rather than all of one class first."""
    by_class: dict[str, int] = {}
    for n in names:
        by_class[n] = by_class.get(n, 0) + 1
    total = len(names)
    slots = sorted(
        ((k + 0.5) / count, name) for name, count in by_class.items() for k in range(count)
    )
    assert len(slots) == total
    return [name for _, name in slots]
