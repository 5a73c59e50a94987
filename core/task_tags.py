"""Tag filtering that can be redone: ``--tags`` / ``--exclude-tags`` applied to the tasks as the
locustfile declared them, however often the filter changes.

A worker filters once when it loads the locustfile (its own command line) and again when a
master welcomes it with the master's tags (Locust #1392: the master decides, remote workers
included). ``filter_tasks_by_tags`` narrows ``tasks`` in place, so each filter starts from the
declared lists kept here, never from the previous filter's result.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from .users import filter_tasks_by_tags

# task holder class -> its tasks as declared (classes are never copied, so weak keys suffice)
_declared: weakref.WeakKeyDictionary[type, list[Any]] = weakref.WeakKeyDictionary()
# task holder class -> the list the last filter left on it: anything else there was put by the
# locustfile since (``MyUser.tasks = [...]`` in an init listener) and is the new declaration
_filtered: weakref.WeakKeyDictionary[type, list[Any]] = weakref.WeakKeyDictionary()


def _remember(holder: type, seen: set[type]) -> None:
    """Keep ``holder``'s declared tasks and those of every TaskSet under it."""
    tasks = holder.tasks  # type: ignore[attr-defined]
    if holder in seen or (holder in _declared and _filtered.get(holder) is tasks):
        return
    seen.add(holder)
    _declared[holder] = list(tasks)
    for t in tasks:
        if isinstance(t, type) and hasattr(t, "tasks"):
            _remember(t, seen)


def _restore(holder: type, seen: set[type]) -> None:
    if holder in seen:
        return
    seen.add(holder)
    holder.tasks = list(_declared[holder])  # type: ignore[attr-defined]
    for t in holder.tasks:  # type: ignore[attr-defined]
        if isinstance(t, type) and t in _declared:
            _restore(t, seen)


def apply_tags(
    user_classes: Iterable[type], tags: Iterable[str] | None, exclude_tags: Iterable[str] | None
) -> None:
    """Give each user class (and its TaskSets) the declared tasks that ``tags`` and
    ``exclude_tags`` keep; ``None`` for both restores every declared task."""
    classes = list(user_classes)
    remembered: set[type] = set()
    for cls in classes:
        _remember(cls, remembered)
    seen: set[type] = set()
    for cls in classes:
        _restore(cls, seen)
    if tags or exclude_tags:
        for cls in classes:
            filter_tasks_by_tags(cls, tags, exclude_tags)
    for holder in seen:
        _filtered[holder] = holder.tasks  # type: ignore[attr-defined]
