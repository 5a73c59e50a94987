"""``OpenAIUser``: an OpenAI-compatible HTTP API through the ``openai`` package.

Every HTTP exchange the SDK makes (retries included) is recorded: the method as request
type, the URL's path as name (``/v1/responses``) unless renamed with
``with self.client.rename_request("name"):``, the time until the body is read, and, as the
size, the number of output tokens the server reports (``usage.output_tokens``, or
``usage.completion_tokens`` for chat completions) as Locust records it. A status of 400 or
more is a failure. The key and address come from the SDK's usual settings
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) or from ``client_kwargs``. Needs the ``oai`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
from openai import OpenAI

from ..users import User
from ._record import ContribError, elapsed_ms, fire, in_request


def _output_tokens(response: Any) -> int:
    try:
        usage = response.json().get("usage") or {}
    except (ValueError, AttributeError, UnicodeDecodeError):
        return 0  # not a JSON object (an event stream, an error page)
    tokens = usage.get("output_tokens", usage.get("completion_tokens", 0))
    return tokens if isinstance(tokens, int) else 0


class OpenAIClient(OpenAI):
    """An ``OpenAI`` client whose HTTP exchanges are recorded through ``request_event``."""

    def __init__(self, request_event: Any, user: Any = None, *args: Any, **kwargs: Any) -> None:
        self.request_name: str | None = None  # set by rename_request
        self.user = user
        self._request_event = request_event
        # the SDK's own HTTP client class (httpx or its successor, whichever it is built on)
        http_client = openai.DefaultHttpxClient(
            event_hooks={"request": [self._started], "response": [self._answered]}
        )
        super().__init__(*args, http_client=http_client, **kwargs)

    @contextmanager
    def rename_request(self, name: str) -> Iterator[None]:
        """Record the requests made in the block under ``name``."""
        self.request_name = name
        try:
            yield
        finally:
            self.request_name = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        # one SDK call (with its retries) is one request for the engine: a stopping user
        # finishes it rather than being killed in the middle of it
        with in_request(self.user):
            return super().request(*args, **kwargs)

    def _started(self, request: Any) -> None:
        request.lcore_start_time = time.time()
        request.lcore_started = time.perf_counter()

    def _answered(self, response: Any) -> None:
        response.read()
        request = response.request
        response_time = elapsed_ms(request.lcore_started)
        error = None
        if response.status_code >= 400:
            error = ContribError(
                f"HTTP {response.status_code} {response.reason_phrase} for {request.method} "
                f"{response.url.path}"
            )
        fire(
            self._request_event,
            request.method,
            self.request_name or response.url.path,
            response_time,
            _output_tokens(response),
            error,
            response=response,
            start_time=request.lcore_start_time,
            url=str(response.url),
        )


class OpenAIUser(User):
    """A user with ``self.client``, an ``OpenAIClient``; ``client_kwargs`` go to ``OpenAI``
    (``base_url``, ``api_key``, ``max_retries``...)."""

    abstract = True
    client_kwargs: dict[str, Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = OpenAIClient(
            self.environment.events.request, self, **(self.client_kwargs or {})
        )
