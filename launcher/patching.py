"""gevent's monkey-patching, as the master and worker processes apply it.

gevent removes ``select.epoll`` when it patches ``select`` (an epoll would block the hub). A
library that reads ``select.epoll`` while its module is executed then fails to import: trio does
(``_epoll = attr.ib(factory=select.epoll)``), and trio is pulled in by httpcore, anyio's pytest
plugin and others whenever it is installed, so a locustfile importing dnspython or paho-mqtt
died with ``module 'select' has no attribute 'epoll'``. Such a module gets the original epoll
while it executes, and only then; everything else sees gevent's patched ``select``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import select
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

# modules that read select.epoll at import time
NEEDS_ORIGINAL_EPOLL = frozenset({"trio._core._io_epoll"})


class _OriginalEpollLoader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, epoll: Any) -> None:
        self.inner = inner
        self.epoll = epoll

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        had = hasattr(select, "epoll")
        select.epoll = self.epoll  # type: ignore[misc]  # a class to mypy; swapped on purpose
        try:
            self.inner.exec_module(module)
        finally:
            if not had:
                del select.epoll  # type: ignore[attr-defined]


class _OriginalEpollFinder(importlib.abc.MetaPathFinder):
    def __init__(self, epoll: Any) -> None:
        self.epoll = epoll

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in NEEDS_ORIGINAL_EPOLL:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _OriginalEpollLoader(spec.loader, self.epoll)  # type: ignore[arg-type]
                return spec
        return None


def patch_all() -> None:
    """gevent's ``monkey.patch_all()``, keeping the libraries that need the real epoll importable."""
    from gevent import monkey

    monkey.patch_all()
    epoll = monkey.get_original("select", "epoll") if hasattr(select, "poll") else None
    if epoll is not None and not hasattr(select, "epoll"):
        if not any(isinstance(f, _OriginalEpollFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _OriginalEpollFinder(epoll))
