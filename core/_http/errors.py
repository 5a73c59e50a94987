"""The errors a request fails with, as both of Locust's clients raise them at once.

Locust's ``HttpUser`` (requests) fails a refused connection with
``requests.exceptions.ConnectionError``; its ``FastHttpUser`` (geventhttpclient) with the
socket's own ``ConnectionRefusedError``, and a timeout with an error whose ``original`` is the
``socket.timeout``. lcore has one client for both, so a transport error is re-raised as a
class that derives from the requests exception *and* from the socket error's own class:
``except requests.exceptions.RequestException``, ``except ConnectionRefusedError`` and
``except OSError`` all catch it. Its ``repr`` and ``str`` are the socket error's, so the
failure's name in the statistics is what it was before (and what FastHttpUser shows).

Malformed URLs raise requests' ``MissingSchema``, ``InvalidSchema`` and ``InvalidURL`` out of
the call, as Locust's HttpSession does: they are locustfile bugs, not failed requests.

Only failures come here: the successful request never touches this module.
"""

from __future__ import annotations

import ssl
from typing import Any

from requests import exceptions as rex

# one class per (requests class, error class), made at the first such failure
_COMBINED: dict[tuple[type[BaseException], type[BaseException]], type[BaseException]] = {}


class _SameFace:
    """Mixed into a combined class: the wrapped error's repr and str, and a pickle that
    rebuilds it from the wrapped error (the combined classes exist in no module)."""

    original: BaseException

    def __repr__(self) -> str:
        return repr(self.original)

    def __str__(self) -> str:
        return str(self.original)

    def __reduce__(self) -> tuple[Any, ...]:
        return (request_error, (self.original, isinstance(self, rex.ConnectTimeout)))


def _requests_class(error: BaseException, connecting: bool) -> type[BaseException]:
    if isinstance(error, TimeoutError):
        return rex.ConnectTimeout if connecting else rex.ReadTimeout
    if isinstance(error, ssl.SSLError):
        return rex.SSLError
    return rex.ConnectionError


def _combined(base: type[BaseException], own: type[BaseException]) -> type[BaseException]:
    key = (base, own)
    cls = _COMBINED.get(key)
    if cls is None:
        try:
            cls = type(own.__name__, (_SameFace, base, own), {"__module__": "lcore.http"})
        except TypeError:  # a layout the two cannot share: the requests class alone
            cls = type(own.__name__, (_SameFace, base), {"__module__": "lcore.http"})
        _COMBINED[key] = cls
    return cls


def request_error(error: BaseException, connecting: bool = False) -> BaseException:
    """``error`` (an OSError, an HTTPException, a parse error) as a requests exception that is
    still an instance of ``error``'s own class (unless the two cannot share a layout: then of
    the requests class alone); ``.original`` is ``error``."""
    if isinstance(error, rex.RequestException):
        return error
    cls = _combined(_requests_class(error, connecting), type(error))
    try:
        # neither class's __init__: the error's own may take other arguments than its args
        combined: Any = cls.__new__(cls, *error.args)
        OSError.__init__(combined, *error.args)
    except Exception:  # a __new__ of its own kind
        return error
    combined.response = combined.request = None  # as requests' RequestException
    if hasattr(error, "__dict__"):
        for name, value in vars(error).items():
            setattr(combined, name, value)
    combined.original = error
    combined.__traceback__ = error.__traceback__
    return combined  # type: ignore[no-any-return]


def url_error(url: str, why: str) -> rex.RequestException:
    """What requests raises for a URL it cannot send to (``why``: schema, scheme, url)."""
    if why == "schema":
        return rex.MissingSchema(
            f"Invalid URL {url!r}: No scheme supplied. Perhaps you meant https://{url}?"
        )
    if why == "scheme":
        return rex.InvalidSchema(f"No connection adapters were found for {url!r}")
    return rex.InvalidURL(f"Invalid URL {url!r}")
