"""``SocketIOUser`` and ``SocketIOClient``: Socket.IO over python-socketio, with Locust's names.

Request types, as Locust names them: ``WS`` for ``connect``, ``WSS`` for ``send`` (named by
its ``name`` argument), ``WSE`` for ``emit`` and ``WSC`` for ``call`` (named by the event),
and ``WSR`` for an event received (recorded by ``on_message``, the catch-all handler, named by
the event). ``connect`` and ``call`` are timed until the server has answered; ``emit`` and
``send`` until the packet is handed to the transport, as there is no answer to wait for; a
received event has no time (0). Sizes are those of the JSON-encoded data. Needs the
``socketio`` extra.
"""

from __future__ import annotations

import json
import time
from typing import Any

import gevent
import socketio

from ..users import User
from ._record import CONTROL_FLOW, elapsed_ms, fire, in_request, measure


def _size(data: Any) -> int:
    if data is None:
        return 0
    if isinstance(data, (bytes, bytearray, str)):
        return len(data)
    try:
        return len(json.dumps(data, separators=(",", ":"), default=str))
    except (TypeError, ValueError):
        return 0


class SocketIOClient(socketio.Client):
    """A ``socketio.Client`` whose calls are recorded through ``request_event``."""

    def __init__(self, request_event: Any, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_event = request_event
        self.user = user

    def connect(self, *args: Any, **kwargs: Any) -> None:
        with measure(self.request_event, "WS", "connect", user=self.user):
            super().connect(*args, **kwargs)

    def send(
        self, data: Any, namespace: str | None = None, callback: Any = None, name: str = "Unnamed"
    ) -> None:
        self._fire_and_forget(
            "WSS", name, data, lambda: super(SocketIOClient, self).send(data, namespace, callback)
        )

    def emit(
        self, event: str, data: Any = None, namespace: str | None = None, callback: Any = None
    ) -> None:
        self._fire_and_forget(
            "WSE",
            str(event),
            data,
            lambda: super(SocketIOClient, self).emit(event, data, namespace, callback),
        )

    def call(self, event: str, data: Any = None, *args: Any, **kwargs: Any) -> Any:
        with measure(self.request_event, "WSC", str(event), _size(data), user=self.user) as meta:
            meta["response"] = super().call(event, data, *args, **kwargs)
        return meta["response"]

    def on_message(self, event: str, data: Any = None, *args: Any) -> None:
        """The catch-all handler: records an event the server sent (type ``WSR``).

        Override it (or register your own handlers with ``sio.on``) to act on events; a
        handler of your own can still call this to record the event.
        """
        fire(self.request_event, "WSR", str(event), 0, _size(data))

    def _fire_and_forget(self, request_type: str, name: str, data: Any, send: Any) -> None:
        error: BaseException | None = None
        with in_request(self.user):  # a user told to stop raises StopUser here
            started = time.perf_counter()
            try:
                send()
            except CONTROL_FLOW:
                raise
            except Exception as e:  # not connected, a closed transport: a failure, not a crash
                error = e
            response_time = elapsed_ms(started)
        fire(self.request_event, request_type, name, response_time, _size(data), error)


class SocketIOUser(User):
    """A user with ``self.sio``, a ``SocketIOClient`` built from ``options`` (keyword arguments
    of ``socketio.Client``); connect it in ``on_start``."""

    abstract = True
    options: dict[str, Any] = {}  # noqa: RUF012 - Locust's class attribute
    sio: SocketIOClient

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sio = SocketIOClient(self.environment.events.request, user=self, **self.options)
        self.sio_greenlet = gevent.spawn(self.sio.wait)
        self.sio.on("*", self.sio.on_message)
