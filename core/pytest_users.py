"""pytest-style locustfiles (Locust 2.47): a file of ``test_*`` functions and no User class.

pytest collects the file (its own rules: ``test_*`` functions, ``Test*`` classes, parametrize,
conftest fixtures); each collected test becomes a User class named after it (``test_login``,
``test_item[2]``), weight 1, whose one task runs the test with its fixtures. Fixtures are
looked up as pytest would (``session`` and ``fastsession`` come from lcore's pytest plugin, or
from Locust's when a real Locust is installed) and called with the user, so ``session`` is an
HTTP client on the user's host (``--host``) that records into the test's statistics.

As in Locust, a request error raised in a test (``raise_for_status()``, a failed
``catch_response``, a connection error) ends that pass of the test quietly — the request was
recorded already — and the test starts again; there is no wait between passes. Any other
exception is a task error, recorded as one. ``pytest.skip`` takes the test out of the user's
rotation (it cannot run under load); ``pytest.fail`` is a task error.
"""

from __future__ import annotations

import http.client
import inspect
import logging
import os
import socket
import ssl
import traceback
from collections.abc import Callable
from typing import Any

from .exception import CatchResponseError, LocustError, ResponseError, StopUser
from .users import User

log = logging.getLogger(__name__)

# What a test's failed request raises (``raise_for_status()``: a status error, a failed
# catch_response, a transport error), which Locust's PytestUser swallows: the request is
# recorded already. A ValueError stays a task error, as in Locust (a URL that cannot work).
_REQUEST_ERRORS = (
    ResponseError,
    CatchResponseError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    ssl.SSLError,
    http.client.HTTPException,
)


class PytestUser(User):
    """A user running pytest test functions (``functions``, collected items) over and over."""

    abstract = True
    functions: list[Any] = []

    _calls: list[Callable[[], Any]] = []  # the tests, bound to their fixtures, once on_start has run

    def on_start(self) -> None:
        self._finalizers: list[Any] = []
        calls = []
        for function in self.functions:
            kwargs = dict(function.lcore_params)
            for name, fixturedef in function.lcore_fixtures:
                kwargs[name] = self._fixture(fixturedef)
            calls.append(_bound(function.obj, kwargs))
        self._calls = calls

    def _fixture(self, fixturedef: Any) -> Any:
        func = fixturedef.func
        value = func(self) if _takes_an_argument(func) else func()
        if inspect.isgenerator(value):
            self._finalizers.append(value)
            return next(value)
        return value

    def on_stop(self) -> None:
        for generator in reversed(getattr(self, "_finalizers", [])):
            generator.close()  # runs the fixture's teardown (session.close())

    def _run_tests(self) -> None:
        for call in list(self._calls):
            try:
                call()
            except _REQUEST_ERRORS as e:
                log.debug("%s\n%s", e, traceback.format_exc())
            except BaseException as e:
                if not _is_pytest_outcome(e):
                    raise
                if type(e).__name__ != "Skipped":
                    raise AssertionError(str(e) or type(e).__name__) from e
                log.info("Not running a skipped test under load: %s", e)
                self._calls.remove(call)
        if not self._calls:  # all skipped, or a fixture failed in on_start (recorded there)
            raise StopUser()

    tasks = [_run_tests]


def _bound(function: Callable[..., Any], kwargs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: function(**kwargs)


def _takes_an_argument(func: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


def _is_pytest_outcome(error: BaseException) -> bool:
    try:
        from _pytest.outcomes import OutcomeException
    except ImportError:
        return False
    return isinstance(error, OutcomeException)


def load_pytest_users(path: str) -> dict[str, type[User]]:
    """User classes for the tests pytest collects from ``path`` (none: an empty dict).
    Raises ImportError without pytest, LocustError when a test asks for a missing fixture."""
    import pytest
    from _pytest.config import Config

    args = ["-q", "-s", "-p", "no:cacheprovider", path]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        args[:0] = ["-p", "lcore.pytest_plugin"]  # not loaded through its entry point then
    config = Config.fromdictargs({}, args)
    config._do_configure()
    session = pytest.Session.from_config(config)
    config.hook.pytest_sessionstart(session=session)
    session.perform_collect()
    config.hook.pytest_collection_modifyitems(session=session, config=config, items=session.items)
    manager = session._fixturemanager

    classes: dict[str, type[User]] = {}
    for item in session.items:
        if not isinstance(item, pytest.Function):
            continue
        callspec = getattr(item, "callspec", None)
        params = dict(callspec.params) if callspec is not None else {}
        fixtures = []
        for name in inspect.signature(item.obj).parameters:
            if name in params:
                continue  # a @pytest.mark.parametrize argument: its value is in params
            definitions = manager.getfixturedefs(name, item)
            if not definitions:
                raise LocustError(f"Could not find fixture for parameter {name!r} in {item.name}")
            fixtures.append((name, definitions[-1]))  # the closest, as pytest picks
        item.lcore_fixtures = fixtures  # type: ignore[attr-defined]
        item.lcore_params = params  # type: ignore[attr-defined]
        cls = classes.get(item.name)
        if cls is None:
            # one class per test name, as Locust's: same-named tests (in two Test classes) share it
            cls = type(item.name, (PytestUser,), {"functions": [], "__module__": item.module.__name__})
            classes[item.name] = cls
        cls.functions.append(item)  # type: ignore[attr-defined]
    return classes
