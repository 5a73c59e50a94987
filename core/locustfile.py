"""Loading a locustfile: import it (with ``locust`` aliased to lcore) and find its classes."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import compat
from .exception import LocustError

if TYPE_CHECKING:
    from .users import User


class LocustfileError(LocustError):
    """A locustfile that cannot be used; the message is one line for the user."""


@dataclass
class Locustfile:
    path: str
    module: ModuleType
    user_classes: dict[str, type[User]] = field(default_factory=dict)
    shape_classes: dict[str, Any] = field(default_factory=dict)


def digest(path: str) -> str:
    """What master and workers compare to be sure they run the same locustfile.

    A consistency check, not authentication: anyone holding (or guessing) the locustfile can
    compute it. Only CURVE keys (--curve-keys) decide who may join a master's port."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def check_syntax(path: str) -> None:
    """Compile without running (the launcher must not import the locustfile before forking)."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        raise LocustfileError(f"Could not read locustfile {path!r}: {e.strerror}") from e
    try:
        compile(source, path, "exec")
    except SyntaxError as e:
        raise LocustfileError(
            f"Syntax error in {e.filename or path}, line {e.lineno}: {e.msg}"
        ) from e


def load_all(paths: list[str]) -> Locustfile:
    """Several locustfiles (``-f a.py,b.py`` or ``-f DIR``), as Locust loads them: their
    classes together; a user class name defined in two of them is an error."""
    if len(paths) == 1:
        return load(paths[0])
    merged: Locustfile | None = None
    for path in paths:
        one = load(path, require_users=False)
        if merged is None:
            merged = one
            continue
        for name, cls in one.user_classes.items():
            if name in merged.user_classes and merged.user_classes[name] is not cls:
                raise LocustfileError(
                    f"Duplicate user class names: {name} is defined in both "
                    f"{os.path.basename(merged.path)} and {os.path.basename(one.path)}"
                )
            merged.user_classes[name] = cls
        for name, shape in one.shape_classes.items():
            merged.shape_classes.setdefault(name, shape)
    assert merged is not None
    if not merged.user_classes:
        names = ", ".join(os.path.basename(p) for p in paths)
        raise LocustfileError(f"No User class found in {names}: define a subclass of User or HttpUser")
    return merged


def digest_all(paths: list[str]) -> str:
    """The digest master and workers compare, over every locustfile of the test."""
    if len(paths) == 1:
        return digest(paths[0])
    combined = hashlib.sha256()
    for path in sorted(paths):
        combined.update(digest(path).encode())
    return combined.hexdigest()[:16]


def load(path: str, require_users: bool = True) -> Locustfile:
    from .shape import LoadTestShape
    from .users import is_user_class

    compat.install()
    path = os.path.abspath(path)
    directory, filename = os.path.split(path)
    name = os.path.splitext(filename)[0]
    if name == "locust":
        # as Locust: a locust.py must not take the locust package's place, neither as this
        # module's name nor for the file's own `import locust` (its directory joins sys.path)
        name = "locustfile"
        importlib.import_module("locust")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LocustfileError(f"Could not load locustfile {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise LocustfileError(
            f"Syntax error in {e.filename or path}, line {e.lineno}: {e.msg}"
        ) from e
    except Exception as e:
        raise LocustfileError(
            f"Error importing locustfile {filename}: {type(e).__name__}: {e}"
        ) from e

    users = {n: v for n, v in vars(module).items() if is_user_class(v)}
    shapes = {
        n: v
        for n, v in vars(module).items()
        if isinstance(v, type)
        and issubclass(v, LoadTestShape)
        and not v.__dict__.get("abstract", False)
    }
    if not users:
        # a pytest-style locustfile: its test_* functions are the users (Locust 2.47)
        users = _pytest_users(path, module)
    if not users and require_users:
        raise LocustfileError(
            f"No User class found in {filename}: define a subclass of User or HttpUser"
        )
    # several shapes are fine, as in Locust: the first one runs, --class-picker offers them all
    return Locustfile(path=path, module=module, user_classes=users, shape_classes=shapes)


def _pytest_users(path: str, module: ModuleType) -> dict[str, type]:
    from .pytest_users import load_pytest_users

    try:
        return load_pytest_users(path)
    except ImportError as e:
        tests = [n for n, v in vars(module).items() if n.startswith("test") and callable(v)]
        if not tests:
            return {}
        raise LocustfileError(
            f"{os.path.basename(path)} is a pytest-style locustfile ({tests[0]} ...): "
            "running it needs pytest (pip install pytest)"
        ) from e
    except LocustError as e:
        raise LocustfileError(f"{os.path.basename(path)}: {e}") from e
