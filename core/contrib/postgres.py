"""``PostgresUser``: SQL over psycopg 3, each ``execute_query`` recorded as one request.

As in Locust, a query is recorded under the name ``execute_query`` with the request type
``postgres_success`` or ``postgres_failure`` (so successes and failures are separate rows), and
the user opens its connection from the ``conn_string`` class attribute when it is created.
psycopg waits on sockets through gevent when the worker is monkey-patched, so a query blocks
only its own user. Needs the ``postgres`` extra.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from ..users import User
from ._record import elapsed_ms, fire, in_request


class PostgresClient:
    """One connection in autocommit mode, so every statement is its own transaction and
    a failed one does not poison the next."""

    def __init__(self, conn_string: str, request_event: Any = None, user: Any = None) -> None:
        if request_event is None:
            from ..event import events

            request_event = events.request
        self.request_event = request_event
        self.user = user
        self.connection = psycopg.connect(conn_string, autocommit=True)

    def execute_query(self, query: str, params: Any = None) -> list[tuple[Any, ...]] | None:
        """Run ``query``; returns its rows (``None`` for a statement without a result)."""
        started = time.perf_counter()
        try:
            with in_request(self.user):
                cursor = self.connection.execute(query, params)
                rows = cursor.fetchall() if cursor.description is not None else None
        except psycopg.Error as e:
            fire(self.request_event, "postgres_failure", "execute_query", elapsed_ms(started), 0, e)
            return None
        fire(self.request_event, "postgres_success", "execute_query", elapsed_ms(started), 0)
        return rows

    def close(self) -> None:
        self.connection.close()


class PostgresUser(User):
    """Set ``conn_string`` (a libpq URI or key=value string) on the subclass."""

    abstract = True
    conn_string: str | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if not self.conn_string:
            raise ValueError(f"{type(self).__name__} needs a conn_string attribute")
        self.client = PostgresClient(self.conn_string, environment.events.request, self)

    def on_stop(self) -> None:
        self.client.close()
