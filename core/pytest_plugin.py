"""lcore's pytest plugin (entry point ``pytest11``): what Locust's plugin gives pytest-style
locustfiles, so ``pytest test_file.py`` runs them with lcore's HTTP client.

- ``--host`` / ``-H``: the base URL the ``session`` fixtures get (relative paths need it).
- ``session`` and ``fastsession``: an HTTP client (``lcore.http.HttpSession``; Locust's two
  clients are one in lcore). Under pytest it records nothing; a test fails on a request only
  where it says so (``raise_for_status()``, ``catch_response``), exactly as with Locust's plugin.
  Under ``lcore -f`` the fixture is called with the user, and records into the test's stats.

When a real Locust is installed, its own plugin (``pytest_locust.plugin``) provides the same
fixtures; lcore's then registers none, so the two never clash. pytest imports this module in
every run of the environment: it imports nothing heavy until a fixture is used.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

_LOCUST_PLUGIN = "pytest_locust.plugin"
_config: pytest.Config | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    try:
        parser.addoption(
            "--host", "-H", action="store", default=None,
            help="Base URL for the session/fastsession fixtures of pytest-style locustfiles",
        )  # fmt: skip
    except ValueError as e:
        if "already added" not in str(e):  # Locust's plugin (or another) declared it first
            raise


def pytest_configure(config: pytest.Config) -> None:
    global _config
    _config = config
    if not _has_locust_plugin(config) and not config.pluginmanager.has_plugin(_FIXTURES_NAME):
        config.pluginmanager.register(_fixtures(), _FIXTURES_NAME)


_FIXTURES_NAME = "lcore-session-fixtures"


def _has_locust_plugin(config: pytest.Config) -> bool:
    return any(
        getattr(plugin, "__name__", None) == _LOCUST_PLUGIN
        for plugin in config.pluginmanager.get_plugins()
    )


def _session(user: Any = None, fast: bool = False) -> Any:
    """Locust's fixture contract: called with the user under a load test, with nothing
    under pytest (then ``--host`` is the base URL and nothing is recorded). ``fast``: the
    ``fastsession`` fixture's FastHttpSession (requests named as FastHttpUser names them)."""
    from .event import RequestEventHook
    from .http import FastHttpSession, HttpSession

    cls = FastHttpSession if fast else HttpSession
    if user is not None:
        return cls(base_url=user.host, request_event=user.environment.events.request, user=user)
    host = _config.getoption("--host") if _config is not None else None
    return cls(base_url=host, request_event=RequestEventHook(), user=None)


def _fixtures() -> types.ModuleType:
    """The fixtures, on a module object of their own: pytest registers the fixtures it finds
    on a plugin, and this module's must exist only when Locust's plugin is absent."""

    @pytest.fixture
    def session(user: Any = None) -> Iterator[Any]:
        s = _session(user)
        yield s
        s.close()

    @pytest.fixture
    def fastsession(user: Any = None) -> Iterator[Any]:
        s = _session(user, fast=True)
        yield s
        s.close()

    holder = types.ModuleType(f"{__name__}.fixtures", "session and fastsession")
    holder.session = session  # type: ignore[attr-defined]
    holder.fastsession = fastsession  # type: ignore[attr-defined]
    return holder
