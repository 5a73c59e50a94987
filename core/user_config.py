"""``--config-users``: settings for user classes from JSON, as Locust's option. Pure: no I/O.

Each entry names a class (``user_class_name``) and sets attributes on it (``weight``,
``fixed_count``, ``host``, ``wait_time`` is not JSON...); ``tasks`` keeps only the tasks of
that class whose function names are listed, chosen from the tasks as declared, so applying
the same settings twice (the master's, then a worker's) gives the same classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .users import User


class UserConfigError(ValueError):
    """A --config-users value that cannot be used; the message is one line."""


def parse(text: str) -> list[dict[str, Any]]:
    """One ``--config-users`` value: a JSON object or list, inline or in a ``.json`` file."""
    try:
        if text.endswith(".json"):
            with open(text) as f:
                value = json.load(f)
        else:
            value = json.loads(text)
    except FileNotFoundError as e:
        raise UserConfigError(f"--config-users: no such file {text!r}") from e
    except (OSError, ValueError) as e:
        raise UserConfigError(f"--config-users must be a valid JSON string or file: {e}") from e
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if not isinstance(entry, dict) or "user_class_name" not in entry:
            raise UserConfigError("--config-users: each user config must specify a user_class_name")
    return entries


def apply(user_classes: Mapping[str, type[User]], configs: Iterable[Mapping[str, Any]]) -> None:
    for config in configs:
        name = config.get("user_class_name")
        cls = user_classes.get(str(name))
        if cls is None:
            raise UserConfigError(
                f"--config-users names {name!r}, which is not a User class of the locustfile "
                f"(available: {', '.join(user_classes)})"
            )
        declared = cls.__dict__.get("_declared_tasks")
        if declared is None:
            declared = list(cls.tasks)
            cls._declared_tasks = declared  # type: ignore[attr-defined]
        for key, value in config.items():
            if key == "user_class_name":
                continue
            if key == "tasks":
                wanted = set(value or [])
                cls.tasks = [t for t in declared if getattr(t, "__name__", None) in wanted]
            else:
                setattr(cls, key, value)
