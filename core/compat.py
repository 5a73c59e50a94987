"""Makes ``import locust`` (and its commonly used submodules) resolve to lcore's API.

Installed by lcore's processes before a locustfile is imported; importing lcore alone never
installs it, and no ``locust`` package is put into site-packages. Each alias is created on
first import, so aliasing ``locust.contrib.fasthttp`` does not import anything it doesn't need.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

# alias -> the lcore module whose names it exposes
ALIASES: dict[str, str] = {
    "locust": "lcore",
    "locust.env": "lcore.env",
    "locust.event": "lcore.event",
    "locust.exception": "lcore.exception",
    "locust.runners": "lcore.runners",
    "locust.shape": "lcore.shape",
    "locust.stats": "lcore.stats",
    "locust.user": "lcore.users",
    "locust.user.users": "lcore.users",
    "locust.user.task": "lcore.users",
    "locust.user.sequential_taskset": "lcore.users",
    "locust.user.wait_time": "lcore.wait_time",
    "locust.user.markov_taskset": "lcore.markov",
    "locust.wait_time": "lcore.wait_time",
    "locust.contrib": "lcore.users",
    "locust.contrib.fasthttp": "lcore.http",
    # protocol users (lcore.contrib), each needing its client library's extra
    "locust.contrib.postgres": "lcore.contrib.postgres",
    "locust.contrib.mqtt": "lcore.contrib.mqtt",
    "locust.contrib.socketio": "lcore.contrib.socketio",
    "locust.contrib.dns": "lcore.contrib.dns",
    "locust.contrib.oai": "lcore.contrib.oai",
    "locust.contrib.mongodb": "lcore.contrib.mongodb",
    "locust.contrib.qdrant": "lcore.contrib.qdrant",
    "locust.contrib.milvus": "lcore.contrib.milvus",
    "locust.contrib.csv_request_logger": "lcore.contrib.csv_request_logger",
    "locust.clients": "lcore.http",
    "locust.debug": "lcore.single",
    "locust.opentelemetry": "lcore.exporters.otel_compat",
    "locust.log": "lcore.log",
    "locust.web": "lcore.web_compat",
    "locust.util": "lcore.users",
    "locust.util.load_locustfile": "lcore.users",
    "locust.util.rounding": "lcore.rounding",
    "locust.util.timespan": "lcore.launcher.timespan",
    # a script's Locust run from Python: ``from locust.main import main`` (launcher modules as
    # strings, so core imports nothing of the launcher until a script asks)
    "locust.main": "lcore.launcher.locust_api",
    # the parser a locustfile's init_command_line_parser listener is given (a string, so core
    # imports nothing of the launcher: it is imported only when a locustfile asks for it)
    "locust.argument_parser": "lcore.launcher.parser",
}

# aliases that are the lcore module itself rather than a copy of its names: a locustfile sets
# module attributes there (``locust.stats.PERCENTILES_TO_REPORT = [...]``) that lcore reads, or
# reads its private state (``locust.debug._env``) or helpers (the CSV request logger's)
SAME_MODULE = {"locust.stats", "locust.debug", "locust.contrib.csv_request_logger"}

# names an alias must carry besides its target module's own (Locust keeps them elsewhere)
EXTRA_NAMES: dict[str, dict[str, tuple[str, str]]] = {
    "locust.contrib.fasthttp": {
        "FastHttpUser": ("lcore.users", "FastHttpUser"),
        "FastHttpSession": ("lcore.http", "FastHttpSession"),
        "FastResponse": ("lcore.http", "Response"),
        "RestResponseContextManager": ("lcore.rest", "RestResponseContextManager"),
        "FastHttpLocust": ("lcore.compat", "FastHttpLocust"),
    },
    "locust": {
        "wait_time": ("lcore.wait_time", None),  # type: ignore[dict-item]
        "Events": ("lcore.event", "Events"),
        "HttpLocust": ("lcore.compat", "HttpLocust"),
        "Locust": ("lcore.compat", "Locust"),
        # Locust's package imports its stats module, so `import locust; locust.stats.X` works
        "stats": ("lcore.stats", None),  # type: ignore[dict-item]
    },
    "locust.clients": {"HttpSession": ("lcore.http", "HttpSession")},
    "locust.user.users": {"PytestUser": ("lcore.pytest_users", "PytestUser")},
    "locust.argument_parser": {
        "LocustArgumentParser": ("lcore.launcher.parser", "LcoreArgumentParser"),
        "parse_options": ("lcore.launcher.locust_api", "parse_options"),
        "get_parser": ("lcore.launcher.locust_api", "get_parser"),
    },
    "locust.user": {
        "wait_time": ("lcore.wait_time", None),  # type: ignore[dict-item]
        "task": ("lcore.users", "task"),
        "tag": ("lcore.users", "tag"),
    },
}


def _renamed(old: str, new: str) -> type:
    """A class that can be imported but not subclassed: subclassing it raises ImportError
    with Locust's message (the class was renamed in Locust 1.0)."""
    message = (
        f"The {old} class has been renamed to {new} in version 1.0. "
        "For more info see: https://docs.locust.io/en/latest/changelog.html#changelog-1-0"
    )

    class Renamed(type):
        def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, object]) -> type:
            if name == old:
                return super().__new__(mcs, name, bases, attrs)
            raise ImportError(message)

    return Renamed(old, (), {"__doc__": message})


Locust = _renamed("Locust", "User")
HttpLocust = _renamed("HttpLocust", "HttpUser")
FastHttpLocust = _renamed("FastHttpLocust", "FastHttpUser")


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, alias: str) -> None:
        self.alias = alias

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        target = importlib.import_module(ALIASES[self.alias])
        if self.alias in SAME_MODULE:
            return target
        module = types.ModuleType(self.alias, target.__doc__)
        public = getattr(target, "__all__", None) or [
            n for n in dir(target) if not n.startswith("_")
        ]
        for name in public:
            module.__dict__[name] = getattr(target, name)
        for name, (mod, attr) in EXTRA_NAMES.get(self.alias, {}).items():
            source = importlib.import_module(mod)
            module.__dict__[name] = source if attr is None else getattr(source, attr)
        if self.alias == "locust":
            module.__dict__["__version__"] = target.__version__
            module.__path__ = []  # a package, so submodule imports go through the finder
        elif any(a.startswith(self.alias + ".") for a in ALIASES):
            module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        if self.alias in SAME_MODULE:
            return
        # Importing a submodule makes it an attribute of its parent package, so a later
        # `from locust.user.task import TaskSet` would turn `locust.user.task` from the @task
        # decorator into that module. Locust's own packages import such submodules while
        # they initialise, before binding the name; do the same here.
        prefix = self.alias + "."
        for child in ALIASES:
            if child.startswith(prefix) and "." not in child[len(prefix) :]:
                attr = child[len(prefix) :]
                if attr in module.__dict__:
                    value = module.__dict__[attr]
                    importlib.import_module(child)
                    module.__dict__[attr] = value


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(
                fullname,
                _AliasLoader(fullname),
                origin=f"lcore alias of {ALIASES[fullname]}",
                is_package=fullname == "locust",
            )
        return None


_finder = _AliasFinder()


def install() -> None:
    """Resolve ``locust`` to lcore from now on, in this process."""
    if sys.meta_path[:1] != [_finder]:
        # first, so that an installed real Locust does not win inside lcore's processes (the
        # fallback of lcore.locust_fallback may have put it last, behind a real Locust)
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        sys.meta_path.insert(0, _finder)
