"""MarkovTaskSet: tasks that follow a weighted chain, ``@transition`` by ``@transition``.

As in Locust (2.38+): the first decorated method is where a user starts; after each task the
next one is drawn from that task's transitions by weight; the wait time applies after every
task. The chain is checked when the class is created, so a typo fails before any user starts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from .exception import LocustError
from .users import TaskSet, _TaskHolderMeta

log = logging.getLogger(__name__)


class NoMarkovTasksError(LocustError):
    pass


class InvalidTransitionError(LocustError):
    pass


class NonMarkovTaskTransitionError(LocustError):
    pass


class MarkovTaskTagError(LocustError):
    pass


def transition(func_name: str, weight: int = 1) -> Callable[[Any], Any]:
    """``@transition("other", weight)``: after this task, go to ``other`` with that weight."""

    def decorator(func: Any) -> Any:
        edges = _edges(func)
        edges[func_name] = weight
        return func

    return decorator


def transitions(weights: Mapping[str, int] | Iterable[str | tuple[str, int]]) -> Callable[[Any], Any]:
    """``@transitions({"a": 2, "b": 1})`` or ``@transitions(["a", ("b", 2)])``."""

    def decorator(func: Any) -> Any:
        edges = _edges(func)
        if isinstance(weights, Mapping):
            edges.update(weights)
        else:
            for item in weights:
                if isinstance(item, tuple):
                    edges[item[0]] = item[1]
                else:
                    edges[item] = 1
        return func

    return decorator


def _edges(func: Any) -> dict[str, int]:
    if not hasattr(func, "transitions"):
        func.transitions = {}
    edges: dict[str, int] = func.transitions
    return edges


class _MarkovMeta(_TaskHolderMeta):
    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        if attrs.get("abstract"):
            return super().__new__(mcs, name, bases, attrs)
        attrs["abstract"] = False
        states = {k: v for k, v in attrs.items() if callable(v) and hasattr(v, "transitions")}
        if not states:
            raise NoMarkovTasksError(
                f"No Markov tasks defined in class {name}. Use the @transition(s) decorators "
                "to define some."
            )
        for state, func in states.items():
            for dest in func.transitions:
                if dest not in attrs:
                    raise InvalidTransitionError(
                        f"Transition to {dest} from {state} is invalid since no such element "
                        f"exists on class {name}"
                    )
                if dest not in states:
                    raise NonMarkovTaskTransitionError(
                        f"{name}.{dest} cannot be used as a target for a transition since it "
                        f"does not define any transitions of its own. Used as a transition "
                        f"from {state}."
                    )
            if state == "run":
                raise LocustError(
                    "TaskSet.run() is a method used internally by Locust, and you must not "
                    "override it or annotate it with transitions"
                )
            if state in ("on_start", "on_stop"):
                log.warning(
                    "%s.%s has @transition: it runs both as a step and as %s",
                    name, state, state,
                )  # fmt: skip
            tags = getattr(func, "locust_tag_set", None)
            if tags:
                raise MarkovTaskTagError(
                    "Tags are unsupported for MarkovTaskSet since they can make the markov chain "
                    f"invalid. Tags detected on {name}.{state}: {tags}"
                )
        first = next(iter(states))
        unreachable = set(states) - _reachable(first, states)
        if unreachable:
            log.warning(
                "The following markov tasks are unreachable in class %s: %s", name, unreachable
            )
        # each state's next states, repeated by weight: one random.choice per step
        attrs["_markov_next"] = {
            state: [d for d, w in func.transitions.items() for _ in range(int(w))]
            for state, func in states.items()
        }
        attrs["_markov_first"] = first
        # @task methods play no part in a Markov chain (as in Locust)
        cls = cast("type[TaskSet]", super().__new__(mcs, name, bases, attrs))
        cls.tasks = []
        return cls


def _reachable(first: str, states: dict[str, Any]) -> set[str]:
    seen = {first}
    todo = [first]
    while todo:
        for dest, weight in states[todo.pop()].transitions.items():
            if weight > 0 and dest not in seen:
                seen.add(dest)
                todo.append(dest)
    return seen


class MarkovTaskSet(TaskSet, metaclass=_MarkovMeta):
    """A TaskSet whose next task is drawn from the current task's ``@transition``s."""

    abstract = True
    _markov_next: dict[str, list[str]] = {}
    _markov_first = ""

    def __init__(self, parent: Any) -> None:
        super().__init__(parent)
        self._markov_state = self._markov_first

    @property
    def current(self) -> Any:
        return getattr(self, self._markov_state)

    def get_next_task(self) -> Any:
        state = self._markov_state
        choices = self._markov_next[state]
        if not choices:
            raise LocustError(f"{type(self).__name__}.{state} has no transition with a weight > 0")
        self._markov_state = random.choice(choices)
        return getattr(type(self), state)
