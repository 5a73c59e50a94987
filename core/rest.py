"""``with self.rest(method, url) as resp``: Locust's FastHttpUser helper for JSON APIs.

The request is sent with JSON ``Content-Type`` and ``Accept`` headers and ``catch_response``;
``resp.js`` holds the parsed body (None when empty). A body that is not JSON, no response at
all, a failed ``assert`` or any exception in the block is recorded as a failure with a readable
message — and the exception does not escape: the task goes on after the block, as in Locust.
"""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .http import ResponseContextManager

_HOME = re.compile(r"^(/home/[^/]+|/Users/[^/]+|/root)/")


class RestResponseContextManager(ResponseContextManager):
    """The response ``rest()`` yields: a ResponseContextManager with ``js``, the parsed body."""

    __slots__ = ("js",)

    def __init__(self, response: Any) -> None:
        super().__init__(response)
        self.js: Any = None


@contextmanager
def rest(
    user: Any, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> Iterator[RestResponseContextManager]:
    headers = headers or {}
    if "Content-Type" not in headers and "content-type" not in headers:
        headers["Content-Type"] = "application/json"
    if "Accept" not in headers and "accept" not in headers:
        headers["Accept"] = "application/json"
    sent = user.client.request(method, url, catch_response=True, headers=headers, **kwargs)
    resp = RestResponseContextManager(sent)
    with resp:
        if resp.status_code == 0 and resp.error is not None:
            resp.failure(str(resp.error))
        else:
            text = resp.text
            if text:
                try:
                    resp.js = json.loads(text)
                except json.JSONDecodeError as e:
                    resp.failure(
                        f"Could not parse response as JSON. {text[:250]}, response code "
                        f"{resp.status_code}, error {e}"
                    )
        try:
            yield resp
        except AssertionError as e:
            resp.failure(_assertion_message(e, resp))
        except Exception as e:
            resp.failure(
                f"{type(e).__name__}: {e} at {_where(e)}. Response was {_text(resp)[:200]}"
            )


@contextmanager
def rest_(
    user: Any, method: str, url: str, name: str | None = None, **kwargs: Any
) -> Iterator[RestResponseContextManager]:
    """``rest`` with a cache-busting ``_=<milliseconds>`` parameter, named without its value."""
    separator = "&" if "?" in url else "?"
    if name is None:
        name = f"{url}{separator}_=..."
    busted = f"{url}{separator}_={int(time.time() * 1000)}"
    with rest(user, method, busted, name=name, **kwargs) as resp:
        yield resp


def _assertion_message(error: AssertionError, resp: RestResponseContextManager) -> Any:
    if not error.args:
        return "Assertion failed"
    message = error.args[0]
    if isinstance(message, str) and message.endswith(","):
        # Locust's convention: a trailing comma asks for the response text
        return f"{message[:-1]}, response was {_text(resp)[:200]}"
    return message if isinstance(message, (str, BaseException)) else str(message)


def _where(error: BaseException) -> str:
    """``file:line in function`` for each frame of the traceback, home directories as ``~``."""
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        if not os.path.isabs(frame.filename):
            continue
        frames.append(f"{_HOME.sub('~/', frame.filename)}:{frame.lineno} in {frame.name}")
    return ", ".join(frames)


def _text(resp: RestResponseContextManager) -> str:
    try:
        return resp.text or ""
    except Exception:
        return ""
