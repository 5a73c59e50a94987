"""``MqttUser`` and ``MqttClient``: MQTT over paho-mqtt, with Locust's request names.

A publish is recorded when the broker has it (PUBACK for QoS 1, PUBCOMP for QoS 2, the packet
written for QoS 0), a subscribe when its SUBACK arrives, as ``MQTT`` requests named
``publish:<qos>:<topic>`` / ``subscribe:<qos>:<topic>`` (``_generate_event_name`` can be
overridden, as Locust's custom-client example does); ``connect`` and ``disconnect`` are
recorded too. The client's network loop runs on paho's thread, which is a greenlet in a
monkey-patched worker. Needs the ``mqtt`` extra.
"""

from __future__ import annotations

import random
import string
import time
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from ..users import User
from ._record import ContribError, fire

REQUEST_TYPE = "MQTT"
# how long a stopping user waits for the broker to acknowledge its last publishes
IN_FLIGHT_GRACE = 2.0
# a SUBACK return code of 0x80 or more refuses the subscription
SUBACK_FAILURE = 0x80
# MQTT 3.1.1 allows client ids of up to 23 characters: "locust-" and 16 random ones
_ID_ALPHABET = string.digits + string.ascii_letters


def _random_client_id() -> str:
    return "locust-" + "".join(random.choice(_ID_ALPHABET) for _ in range(16))


def _payload_size(payload: Any) -> int:
    if payload is None or isinstance(payload, (int, float)):
        return 0  # paho sends a number as its text, Locust counts it as 0
    if isinstance(payload, str):
        return len(payload.encode("utf-8"))
    return len(payload)


class PublishedMessageContext(NamedTuple):
    """What is known of a publish until the broker confirms it."""

    qos: int
    topic: str
    start_time: float
    payload_size: int


class _Pending(NamedTuple):
    name: str
    started: float  # perf_counter
    size: int
    context: dict[str, Any]


class MqttClient(mqtt.Client):
    """A paho ``Client`` that records its publishes, subscribes, connects and disconnects.

    Extra keyword arguments go to paho (``transport``, ``clean_session``, ...). The client
    id is generated when none is given, so that every request can name its client even when
    a broker would assign one.
    """

    def __init__(
        self,
        *args: Any,
        environment: Any,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv311,
        use_loop_selectors: bool = False,
        **kwargs: Any,
    ) -> None:
        client_id = client_id or _random_client_id()
        # the recording callbacks have VERSION2 signatures (one set for MQTT 3.1.1 and 5); a
        # version asked for is overridden (on_message, the one a user sets, is alike in both)
        if args and isinstance(args[0], CallbackAPIVersion):
            args = args[1:]
        kwargs.update(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        super().__init__(*args, **kwargs)
        self.environment = environment
        self.client_id = client_id
        # accepted for Locust's attribute; gevent's select has no FD_SETSIZE limit, so the
        # selector-based loop Locust offers for more than ~340 clients is not needed here
        self.use_loop_selectors = use_loop_selectors
        self._pending_publish: dict[int, _Pending] = {}
        self._pending_subscribe: dict[int, _Pending] = {}
        self._publishing: _Pending | None = None  # the publish() call in flight
        self._subscribing: _Pending | None = None
        self._connect_started: float | None = None
        self._record_disconnect = True
        self.on_connect = self._on_connect_cb
        self.on_connect_fail = self._on_connect_fail_cb
        self.on_disconnect = self._on_disconnect_cb
        self.on_publish = self._on_publish_cb
        self.on_subscribe = self._on_subscribe_cb

    # naming ---------------------------------------------------------------------------------
    def _generate_event_name(self, event_type: str, qos: int, topic: str) -> str:
        """``publish:1:my/topic``: override to group requests differently."""
        return f"{event_type}:{qos}:{topic}"

    def _fire(
        self, name: str, started: float | None, size: int, error: BaseException | None, **ctx: Any
    ) -> None:
        response_time = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        fire(
            self.environment.events.request, REQUEST_TYPE, name, response_time, size, error,
            context={"client_id": self.client_id, **ctx},
        )  # fmt: skip

    # the calls a task makes -------------------------------------------------------------------
    def connect_async(self, *args: Any, **kwargs: Any) -> None:
        self._connect_started = time.perf_counter()
        super().connect_async(*args, **kwargs)

    def connect(self, *args: Any, **kwargs: Any) -> MQTTErrorCode:
        self._connect_started = time.perf_counter()
        return super().connect(*args, **kwargs)

    def publish(
        self,
        topic: str,
        payload: Any = None,
        qos: int = 0,
        retain: bool = False,
        properties: Any = None,
    ) -> mqtt.MQTTMessageInfo:
        name = self._generate_event_name("publish", qos, topic)
        context = PublishedMessageContext(qos, topic, time.time(), _payload_size(payload))
        # paho may call on_publish before publish() returns (QoS 0 written at once), when
        # the mid is not known yet: the callback then takes the call in flight
        self._publishing = _Pending(
            name, time.perf_counter(), context.payload_size, context._asdict()
        )
        try:
            info = super().publish(topic, payload, qos, retain, properties)
        finally:
            in_flight, self._publishing = self._publishing, None
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and in_flight is not None:
            self._pending_publish[info.mid] = in_flight
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # not sent (not connected, queue full): a failure now; should paho still send it
            # later, its callback finds no pending entry and records nothing more
            error = ContribError(f"publish failed: {mqtt.error_string(info.rc)}")
            self._fire(name, None, 0, error, mid=info.mid, **context._asdict())
        return info

    def subscribe(
        self, topic: Any, qos: int = 0, options: Any = None, properties: Any = None
    ) -> Any:
        first = topic if isinstance(topic, str) else topic[0]
        topic_name = first if isinstance(first, str) else first[0]
        name = self._generate_event_name("subscribe", qos, topic_name)
        context = {"qos": qos, "topic": topic_name, "start_time": time.time()}
        self._subscribing = _Pending(name, time.perf_counter(), 0, context)
        try:
            result, mid = super().subscribe(topic, qos, options, properties)
        finally:
            in_flight, self._subscribing = self._subscribing, None
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS and in_flight is not None and mid is not None:
            self._pending_subscribe[mid] = in_flight
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            error = ContribError(f"subscribe failed: {mqtt.error_string(result)}")
            self._fire(name, None, 0, error, **context)
        return result, mid

    def disconnect_quietly(self) -> None:
        """Disconnect and stop the network loop, not recording the ``disconnect`` (Locust's
        users end with their process, so Locust never records one either). Publishes not
        yet acknowledged are waited for, up to ``IN_FLIGHT_GRACE`` seconds, and recorded."""
        self._record_disconnect = False
        # publishes the broker has not acknowledged yet are requests in flight: let them
        # finish (for a bounded time), as a stopping user finishes its HTTP request
        deadline = time.monotonic() + IN_FLIGHT_GRACE
        while self._pending_publish and self.is_connected() and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            self.disconnect()
        finally:
            self.loop_stop()

    # paho's callbacks (its VERSION2 signatures, the same for MQTT 3.1.1 and 5) ------------------
    def _on_connect_cb(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        started, self._connect_started = self._connect_started, None
        error = ContribError(f"connect refused: {reason}") if reason.is_failure else None
        self._fire("connect", started, 0, error)

    def _on_connect_fail_cb(self, client: Any, userdata: Any) -> None:
        started, self._connect_started = self._connect_started, None
        error = ContribError(f"could not connect to {self.host}:{self.port}")
        self._fire("connect", started, 0, error)
        self._connect_started = time.perf_counter()  # paho retries: time the next attempt

    def _on_disconnect_cb(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if not self._record_disconnect:
            return
        error = ContribError(f"disconnected: {reason}") if reason.is_failure else None
        self._fire("disconnect", None, 0, error)

    def _on_publish_cb(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        pending = self._pending_publish.pop(mid, None)
        if pending is None:
            pending, self._publishing = self._publishing, None
        if pending is None:
            return  # recorded as failed when publish() returned
        error = ContribError(f"publish refused: {reason}") if reason.is_failure else None
        self._fire(pending.name, pending.started, pending.size, error, mid=mid, **pending.context)

    def _on_subscribe_cb(
        self, client: Any, userdata: Any, mid: int, reasons: list[Any], props: Any
    ) -> None:
        pending = self._pending_subscribe.pop(mid, None)
        if pending is None:
            pending, self._subscribing = self._subscribing, None
        if pending is None:
            return
        refused = [int(r.value) for r in reasons if int(r.value) >= SUBACK_FAILURE]
        error = ContribError(f"subscription refused by the broker: {refused}") if refused else None
        self._fire(pending.name, pending.started, 0, error, **pending.context)


class MqttUser(User):
    """A user with ``self.client``, an ``MqttClient`` connected to ``host:port`` in the
    background when the user starts (wait for ``connect`` before publishing, as Locust's
    examples do with a sleep in ``on_start``)."""

    abstract = True
    host: str | None = "localhost"
    port: int = 1883
    transport: str = "tcp"  # or "websockets"
    ws_path: str | None = "/mqtt"
    tls_context: Any = None
    client_cls: type[MqttClient] = MqttClient
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    protocol: MQTTProtocolVersion = mqtt.MQTTv311
    use_loop_selectors: bool = False

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.client: MqttClient = self.client_cls(
            environment=environment,
            transport=self.transport,
            client_id=self.client_id,
            protocol=self.protocol,
            use_loop_selectors=self.use_loop_selectors,
        )
        if self.tls_context:
            self.client.tls_set_context(self.tls_context)
        if self.transport == "websockets" and self.ws_path:
            self.client.ws_set_options(path=self.ws_path)
        if self.username and self.password:
            self.client.username_pw_set(self.username, self.password)
        self.client.connect_async(host=self.host or "localhost", port=self.port)
        self.client.loop_start()

    def on_stop(self) -> None:
        self.client.disconnect_quietly()
