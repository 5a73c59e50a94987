"""``MilvusUser``: the Milvus vector database through pymilvus's ``MilvusClient``.

The user's ``insert``, ``upsert``, ``search``, ``hybrid_search``, ``query`` and ``delete`` are
recorded as requests of type ``milvus`` with those names, as in Locust; each returns Locust's
result dict (``success``, ``response_time``, ``result`` or ``exception``; ``empty`` for a
search or query that found nothing, which is not a failure). ``search(...,
calculate_recall=True, ground_truth=[...])`` also records a ``recall`` request whose "time"
is the recall in percent, as Locust does. ``uri`` may be a local file for Milvus Lite. gRPC is
put in gevent mode when the worker is monkey-patched, so a call blocks only its user. Needs
the ``milvus`` extra (Milvus Lite: ``pip install 'pymilvus[milvus-lite]'``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.lock
import gevent.monkey

if gevent.monkey.is_module_patched("socket"):
    # gRPC's own threads and polling must yield to gevent, or a call stalls the worker
    import grpc.experimental.gevent as _grpc_gevent

    _grpc_gevent.init_gevent()

from pymilvus import CollectionSchema, MilvusClient  # noqa: E402 - after gRPC's gevent mode
from pymilvus.milvus_client import IndexParams  # noqa: E402

from ..users import User  # noqa: E402
from ._record import CONTROL_FLOW, elapsed_ms, fire, in_request  # noqa: E402

_CONNECTING = threading.Lock()  # a gevent lock in a monkey-patched worker


def _connect(**kwargs: Any) -> MilvusClient:
    """A ``MilvusClient``, made on a greenlet of its own, one at a time.

    Milvus Lite starts its server for a ``.db`` file with the first client and locks the
    file: two users racing to start it, or a user whose spawn is cancelled half-way (a new
    spawn target kills the spawner), would leave the file locked by a server nobody uses.
    """

    def connect() -> MilvusClient:
        with _CONNECTING:
            return MilvusClient(**kwargs)

    return gevent.spawn(connect).get()


def _timed(call: Callable[[], Any], user: Any = None) -> dict[str, Any]:
    with in_request(user):
        started = time.perf_counter()
        try:
            result = call()
        except CONTROL_FLOW:
            raise
        except Exception as e:  # pymilvus raises MilvusException and plain errors alike
            return {"success": False, "response_time": elapsed_ms(started), "exception": e}
        return {"success": True, "response_time": elapsed_ms(started), "result": result}


def _mark_empty(outcome: dict[str, Any], nested: bool) -> dict[str, Any]:
    if outcome["success"]:
        result = outcome["result"]
        empty = len(result) == 0 or (nested and all(len(hits) == 0 for hits in result))
        outcome["empty"] = empty
        outcome["success"] = not empty
    return outcome


# one lock per (uri, database, collection): see MilvusV2Client.create_collection
_CREATING: dict[tuple[str, str, str], gevent.lock.Semaphore] = {}


class MilvusV2Client:
    """A ``MilvusClient`` on one collection whose calls return Locust's result dicts."""

    def __init__(
        self,
        uri: str,
        collection_name: str,
        token: str = "root:Milvus",
        db_name: str = "default",
        timeout: int = 60,
        user: Any = None,
    ) -> None:
        self.uri = uri
        self.collection_name = collection_name
        self.token = token
        self.db_name = db_name
        self.timeout = timeout
        self.user = user
        self.client = _connect(uri=uri, token=token, db_name=db_name, timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def create_collection(self, schema: Any, index_params: Any, **kwargs: Any) -> None:
        """Create the collection unless it exists (not a recorded request). The users of one
        process create it one at a time: gRPC calls yield to other greenlets, so two users'
        constructors would both find it missing, and the second create (its index build)
        fails; Milvus Lite answers it with UNIMPLEMENTED (AllocTimestamp)."""
        key = (self.uri, self.db_name, self.collection_name)
        with _CREATING.setdefault(key, gevent.lock.Semaphore()):
            if not self.client.has_collection(self.collection_name):
                self.client.create_collection(
                    collection_name=self.collection_name,
                    schema=schema,
                    index_params=index_params,
                    **kwargs,
                )

    def insert(self, data: Any) -> dict[str, Any]:
        return _timed(
            lambda: self.client.insert(collection_name=self.collection_name, data=data), self.user
        )

    def upsert(self, data: Any) -> dict[str, Any]:
        return _timed(
            lambda: self.client.upsert(collection_name=self.collection_name, data=data), self.user
        )

    def search(
        self,
        data: Any,
        anns_field: str,
        limit: int,
        filter: str = "",
        search_params: Any = None,
        output_fields: list[str] | None = None,
        calculate_recall: bool = False,
        ground_truth: list[Any] | None = None,
    ) -> dict[str, Any]:
        outcome = _mark_empty(
            _timed(
                lambda: self.client.search(
                    collection_name=self.collection_name, data=data, anns_field=anns_field,
                    filter=filter, limit=limit, search_params=search_params,
                    output_fields=output_fields or ["id"],
                ),
                self.user,
            ),
            nested=True,
        )  # fmt: skip
        if calculate_recall and ground_truth is not None and outcome["success"]:
            outcome["recall"] = self.get_recall(outcome["result"], ground_truth, limit)
        return outcome

    def hybrid_search(
        self, reqs: Any, ranker: Any, limit: int, output_fields: list[str] | None = None
    ) -> dict[str, Any]:
        return _mark_empty(
            _timed(
                lambda: self.client.hybrid_search(
                    collection_name=self.collection_name, reqs=reqs, ranker=ranker, limit=limit,
                    output_fields=output_fields or ["id"], timeout=self.timeout,
                ),
                self.user,
            ),
            nested=True,
        )  # fmt: skip

    def query(self, filter: str, output_fields: list[str] | None = None) -> dict[str, Any]:
        return _mark_empty(
            _timed(
                lambda: self.client.query(
                    collection_name=self.collection_name, filter=filter,
                    output_fields=output_fields or ["id"],
                ),
                self.user,
            ),
            nested=False,
        )  # fmt: skip

    def delete(self, filter: str) -> dict[str, Any]:
        return _timed(
            lambda: self.client.delete(collection_name=self.collection_name, filter=filter),
            self.user,
        )

    @staticmethod
    def get_recall(search_results: Any, ground_truth: list[Any], limit: int | None = None) -> float:
        """The share of the first ``limit`` ground-truth ids found by the first query."""
        hits = search_results[0] if len(search_results) else []
        found = {hit.get("id") for hit in hits if hasattr(hit, "get")}
        limit = len(found) if limit is None else limit
        expected = set(ground_truth[:limit])
        if not expected or len(ground_truth) < limit:
            return 0.0
        return len(expected & found) / len(expected)


class MilvusUser(User):
    """Pass ``uri``, ``collection_name`` (and ``schema``/``index_params`` to create the
    collection, with ``create_collection``'s other keywords) to ``__init__`` from the
    subclass's own, as Locust's example does."""

    abstract = True

    def __init__(
        self,
        environment: Any,
        uri: str = "http://localhost:19530",
        token: str = "root:Milvus",
        collection_name: str = "test_collection",
        db_name: str = "default",
        timeout: int = 60,
        schema: CollectionSchema | None = None,
        index_params: IndexParams | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(environment)
        if uri is None:
            raise ValueError("'uri' must be provided for MilvusUser")
        if collection_name is None:
            raise ValueError("'collection_name' must be provided for MilvusUser")
        self.client_type = "milvus"
        self.client = MilvusV2Client(
            uri=uri, token=token, collection_name=collection_name, db_name=db_name,
            timeout=timeout, user=self,
        )  # fmt: skip
        if schema is not None:
            self.client.create_collection(schema=schema, index_params=index_params, **kwargs)

    def _fire_event(self, request_type: str, name: str, result: dict[str, Any]) -> None:
        fire(
            self.environment.events.request, request_type, name,
            result.get("response_time", 0), 0, result.get("exception"),
        )  # fmt: skip

    def insert(self, data: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.client.insert(data)
        self._fire_event(self.client_type, "insert", result)
        return result

    def upsert(self, data: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.client.upsert(data)
        self._fire_event(self.client_type, "upsert", result)
        return result

    def search(
        self,
        data: Any,
        anns_field: str,
        limit: int,
        filter: str = "",
        search_params: Any = None,
        output_fields: list[str] | None = None,
        calculate_recall: bool = False,
        ground_truth: list[Any] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.search(
            data, anns_field, limit, filter=filter, search_params=search_params,
            output_fields=output_fields, calculate_recall=calculate_recall,
            ground_truth=ground_truth,
        )  # fmt: skip
        self._fire_event(self.client_type, "search", result)
        if calculate_recall and "recall" in result:
            # Locust's convention: the recall, in percent, stands in for the response time
            fire(
                self.environment.events.request,
                self.client_type,
                "recall",
                result["recall"] * 100,
                0,
            )
        return result

    def hybrid_search(
        self, reqs: Any, ranker: Any, limit: int, output_fields: list[str] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.client.hybrid_search(reqs, ranker, limit, output_fields)
        self._fire_event(self.client_type, "hybrid_search", result)
        return result

    def query(self, filter: str, output_fields: list[str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.client.query(filter=filter, output_fields=output_fields)
        self._fire_event(self.client_type, "query", result)
        return result

    def delete(self, filter: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.delete(filter)
        self._fire_event(self.client_type, "delete", result)
        return result

    def on_stop(self) -> None:
        self.client.close()
