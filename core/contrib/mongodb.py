"""``MongoDBUser``: queries over pymongo, each ``execute_query`` recorded as one request.

As in Locust, ``self.client`` is a ``MongoClient`` opened from the ``conn_string`` class
attribute on the database ``db_name``, and ``execute_query(collection, filter)`` runs a find,
fetches every document, and is recorded as request type ``MONGODB`` named ``QUERY``; a
pymongo error (the server unreachable, a bad filter) is a failure. The documents are
returned. pymongo's sockets and monitor threads are cooperative in a monkey-patched worker.
Needs the ``mongodb`` extra.
"""

from __future__ import annotations

import time
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ..users import User
from ._record import elapsed_ms, fire, in_request


def _readable(error: PyMongoError) -> PyMongoError:
    """The error without the topology description pymongo appends to a server selection
    timeout: it names a per-client id, so every user's failure would be a row of its own."""
    text = str(error)
    cut = text.find(", Topology Description:")
    if cut < 0:
        return error
    try:
        return type(error)(text[:cut])
    except Exception:  # an error class with another constructor: keep it whole
        return error


class MongoDBClient(MongoClient):  # type: ignore[type-arg]
    def __init__(
        self,
        conn_string: str,
        db_name: str,
        request_event: Any = None,
        user: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn_string, **kwargs)
        if request_event is None:
            from ..event import events

            request_event = events.request
        self.db = self[db_name]
        self._request_event = request_event
        self._user = user

    def execute_query(self, collection_name: str, query: dict[str, Any]) -> list[Any] | None:
        """Find the documents matching ``query`` in ``collection_name``; ``None`` on failure."""
        documents = None
        error: BaseException | None = None
        with in_request(self._user):
            started = time.perf_counter()
            try:
                # find() is lazy: the documents are fetched here, so the time covers them
                documents = list(self.db[collection_name].find(query))
            except PyMongoError as e:
                error = _readable(e)
            response_time = elapsed_ms(started)
        fire(self._request_event, "MONGODB", "QUERY", response_time, 0, error)
        return documents


class MongoDBUser(User):
    """Set ``conn_string`` and ``db_name`` on the subclass."""

    abstract = True
    conn_string: str | None = None
    db_name: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.conn_string or not self.db_name:
            raise ValueError(f"{type(self).__name__} needs conn_string and db_name attributes")
        self.client = MongoDBClient(
            self.conn_string, self.db_name, self.environment.events.request, self
        )

    def on_stop(self) -> None:
        self.client.close()
