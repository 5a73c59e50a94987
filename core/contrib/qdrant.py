"""``QdrantUser``: the Qdrant vector database through qdrant-client.

The user's own ``upsert``, ``search``, ``scroll`` and ``delete`` are recorded as requests of
type ``qdrant`` with those names, as in Locust; each returns Locust's result dict
(``success``, ``response_time``, ``result`` or ``exception``; ``empty`` for a search or scroll
that found nothing, which is not a failure). A client error is a failure. ``url`` may be
``":memory:"`` for Qdrant's local, in-process mode (so ``-H :memory:`` works with Locust's
example, which takes its url from the host). Needs the ``qdrant`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.models import VectorParams

from ..users import User
from ._record import CONTROL_FLOW, elapsed_ms, fire, in_request


def _timed(call: Callable[[], Any], user: Any = None) -> dict[str, Any]:
    with in_request(user):
        started = time.perf_counter()
        try:
            result = call()
        except CONTROL_FLOW:
            raise
        except Exception as e:  # the client's errors have no common base class
            return {"success": False, "response_time": elapsed_ms(started), "exception": e}
        return {"success": True, "response_time": elapsed_ms(started), "result": result}


class QdrantLocustClient:
    """A ``QdrantClient`` on one collection whose calls return Locust's result dicts."""

    def __init__(
        self,
        url: str | None,
        collection_name: str,
        api_key: str | None = None,
        timeout: int = 60,
        user: Any = None,
        **kwargs: Any,
    ) -> None:
        self.url = url
        self.collection_name = collection_name
        self.api_key = api_key
        self.timeout = timeout
        self.user = user
        if url == ":memory:":
            url, kwargs = None, {**kwargs, "location": ":memory:"}
        self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout, **kwargs)

    def close(self) -> None:
        self.client.close()

    def create_collection(self, vectors_config: Any, **kwargs: Any) -> None:
        """Create the collection unless it exists (not a recorded request)."""
        if not self.client.collection_exists(collection_name=self.collection_name):
            self.client.create_collection(
                collection_name=self.collection_name, vectors_config=vectors_config, **kwargs
            )

    def upsert(self, points: Any) -> dict[str, Any]:
        return _timed(
            lambda: self.client.upsert(collection_name=self.collection_name, points=points),
            self.user,
        )

    def search(
        self,
        query: Any,
        limit: int = 10,
        query_filter: Any = None,
        search_params: Any = None,
        with_payload: Any = True,
    ) -> dict[str, Any]:
        outcome = _timed(
            lambda: self.client.query_points(
                collection_name=self.collection_name, query=query, limit=limit,
                query_filter=query_filter, search_params=search_params, with_payload=with_payload,
            ),
            self.user,
        )  # fmt: skip
        if outcome["success"]:
            outcome["empty"] = not outcome["result"].points
            outcome["success"] = not outcome["empty"]
        return outcome

    def scroll(
        self, scroll_filter: Any = None, limit: int = 10, with_payload: Any = True
    ) -> dict[str, Any]:
        outcome = _timed(
            lambda: self.client.scroll(
                collection_name=self.collection_name, scroll_filter=scroll_filter, limit=limit,
                with_payload=with_payload,
            ),
            self.user,
        )  # fmt: skip
        if outcome["success"]:
            points, outcome["next_offset"] = outcome["result"]
            outcome["result"] = points
            outcome["empty"] = not points
            outcome["success"] = not outcome["empty"]
        return outcome

    def delete(self, points_selector: Any) -> dict[str, Any]:
        return _timed(
            lambda: self.client.delete(
                collection_name=self.collection_name, points_selector=points_selector
            ),
            self.user,
        )


class QdrantUser(User):
    """Set ``collection_name`` (and ``url``, ``vectors_config`` to create the collection) on
    the subclass; ``client_kwargs`` go to ``QdrantClient``, ``collection_kwargs`` to
    ``create_collection``."""

    abstract = True
    url: str | None = "http://localhost:6333"
    api_key: str | None = None
    collection_name: str | None = None
    timeout: int = 60
    vectors_config: VectorParams | None = None
    client_kwargs: dict[str, Any] | None = None
    collection_kwargs: dict[str, Any] | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.collection_name is None:
            raise ValueError("'collection_name' must be provided for QdrantUser")
        self.client_type = "qdrant"
        self.client = QdrantLocustClient(
            url=self.url,
            collection_name=self.collection_name,
            api_key=self.api_key,
            timeout=self.timeout,
            user=self,
            **(self.client_kwargs or {}),
        )
        if self.vectors_config is not None:
            self.client.create_collection(self.vectors_config, **(self.collection_kwargs or {}))

    def _fire_event(self, request_type: str, name: str, result: dict[str, Any]) -> None:
        fire(
            self.environment.events.request, request_type, name,
            result.get("response_time", 0), 0, result.get("exception"),
        )  # fmt: skip

    def upsert(self, points: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.client.upsert(points)
        self._fire_event(self.client_type, "upsert", result)
        return result

    def search(
        self,
        query: Any,
        limit: int = 10,
        query_filter: Any = None,
        search_params: Any = None,
        with_payload: Any = True,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.search(query, limit, query_filter, search_params, with_payload)
        self._fire_event(self.client_type, "search", result)
        return result

    def scroll(
        self, scroll_filter: Any = None, limit: int = 10, with_payload: Any = True
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.scroll(scroll_filter, limit, with_payload)
        self._fire_event(self.client_type, "scroll", result)
        return result

    def delete(self, points_selector: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.client.delete(points_selector)
        self._fire_event(self.client_type, "delete", result)
        return result

    def on_stop(self) -> None:
        self.client.close()
