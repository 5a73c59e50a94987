"""locust.contrib.mqtt under lcore: Locust's three MQTT examples against a real mosquitto.

A subscriber of the test's own counts what the broker delivered on the examples' topic, and
the broker's log counts the connections, so the publishes and connects lcore recorded are
checked against what the broker saw. A user pointed at a closed port checks the failures.
"""

from __future__ import annotations

import csv
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until
from contrib_servers import Mosquitto, need_module, running_mosquitto
from test_engine import free_port, write

pytestmark = pytest.mark.integration

# Locust's examples/mqtt/*.py, with the broker's port and a shorter wait for the connection
PLAIN = """
from locust import TaskSet, task
from locust.contrib.mqtt import MqttUser
from locust.user.wait_time import between

import time


class MyUser(MqttUser):
    host = "localhost"
    port = {port}
    wait_time = between(0.01, 0.1)

    def on_start(self):
        time.sleep(1)

    @task
    def say_hello(self):
        self.client.publish("hello/locust", b"hello world")


class UnreachableUser(MqttUser):
    # not in Locust's example: a broker that is not there, for the failures
    host = "127.0.0.1"
    port = {closed_port}
    fixed_count = 1
    wait_time = between(0.1, 0.2)

    @task
    def say_hello(self):
        self.client.publish("hello/nobody", b"lost")
"""

CUSTOM_MQTT_CLIENT = """
from locust import TaskSet, task
from locust.contrib.mqtt import MqttClient, MqttUser
from locust.user.wait_time import between

import time


class MyMqttClient(MqttClient):
    def _generate_event_name(self, event_type: str, qos: int, topic: str):
        return f"mqtt:{{event_type}}:{{qos}}"


class MyUser(MqttUser):
    host = "localhost"
    port = {port}
    wait_time = between(0.01, 0.1)
    client_cls: type[MqttClient] = MyMqttClient

    def on_start(self):
        time.sleep(1)

    @task
    def say_hello(self):
        self.client.publish("hello/locust", b"hello world locust custom client")
"""

CUSTOM_CLIENT_TASKSET = """
from locust import TaskSet, task
from locust.contrib.mqtt import MqttClient, MqttUser
from locust.user.wait_time import between

import time


class MyMqttClient(MqttClient):
    def _generate_event_name(self, event_type: str, qos: int, topic: str):
        return f"mqtt:{{event_type}}:{{qos}}"


class MyUser(MqttUser):
    host = "localhost"
    port = {port}
    wait_time = between(0.01, 0.1)
    client_cls: type[MqttClient] = MyMqttClient

    @task
    class MyTasks(TaskSet):
        def on_start(self):
            time.sleep(1)

        @task
        def say_hello(self):
            self.client.publish("hello/locust", b"hello world locust custom client")
"""


class Subscriber:
    """Counts the messages the broker delivers on a topic."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.count = 0
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lcore-test-subscriber")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=0)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test's subscriber did not subscribe"

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    need_module("paho.mqtt")
    with running_mosquitto(tmp_path) as server:
        yield server


def read_rows(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def read_failures(prefix: Path) -> dict[tuple[str, str], tuple[str, int]]:
    with open(f"{prefix}_failures.csv", newline="") as f:
        return {
            (r["Method"], r["Name"]): (r["Error"], int(r["Occurrences"])) for r in csv.DictReader(f)
        }


@pytest.mark.parametrize(
    ("source", "publish_name"),
    [
        (PLAIN, "publish:0:hello/locust"),
        (CUSTOM_MQTT_CLIENT, "mqtt:publish:0"),
        (CUSTOM_CLIENT_TASKSET, "mqtt:publish:0"),
    ],
    ids=["locustfile", "custom_mqtt_client", "custom_client"],
)
def test_mqtt_examples_record_what_the_broker_saw(
    tmp_path,
    mosquitto,
    run_lcore,
    source,
    publish_name,
) -> None:
    subscriber = Subscriber(mosquitto.port, "hello/locust")
    try:
        locustfile = write(tmp_path, source.format(port=mosquitto.port, closed_port=free_port()))
        prefix = tmp_path / "run"
        users = 3 + (source is PLAIN)
        proc = run_lcore(
            "-f", str(locustfile), "--headless", "-u", str(users), "-r", "10", "-t", "3s",
            "--processes", "2", "--master-bind-port", str(free_port()), "--no-web",
            "--csv", str(prefix),
        )  # fmt: skip
        code = proc.wait(60)
        assert "Traceback" not in proc.output, proc.output[-4000:]
        rows = read_rows(prefix)
        published = int(rows[("MQTT", publish_name)]["Request Count"])
        assert int(rows[("MQTT", publish_name)]["Failure Count"]) == 0
        assert published > 20
        # every publish recorded reached the broker, which delivered it to the subscriber
        wait_until(lambda: subscriber.count >= published, timeout=10)
        assert subscriber.count == published
    finally:
        subscriber.close()

    # one connect per user that reached the broker, each one a connection in its log
    connected = len(
        re.findall(r"New client connected from 127\.0\.0\.1:\d+ as locust-", mosquitto.log_text())
    )
    assert (
        int(rows[("MQTT", "connect")]["Request Count"])
        - int(rows[("MQTT", "connect")]["Failure Count"])
        == 3
    )
    assert connected == 3
    assert ("MQTT", "disconnect") not in rows  # users ending quietly, as Locust's do

    if source is PLAIN:
        assert code == 1, proc.output[-4000:]  # failures were recorded
        failures = read_failures(prefix)
        error, _ = failures[("MQTT", "connect")]
        assert error.startswith("ContribError('could not connect to 127.0.0.1:"), error
        error, lost = failures[("MQTT", "publish:0:hello/nobody")]
        assert "not currently connected" in error, error
        assert lost == int(rows[("MQTT", "publish:0:hello/nobody")]["Request Count"]) > 0
    else:
        assert code == 0, proc.output[-4000:]


SUBSCRIBE_AND_QOS = """
import time

import paho.mqtt.client
from locust import task
from locust.contrib.mqtt import MqttUser
from locust.user.wait_time import between


class V311User(MqttUser):
    host = "127.0.0.1"
    port = {port}
    username = "lcore"
    password = "secret"
    wait_time = between(0.01, 0.05)

    def on_start(self):
        time.sleep(0.5)
        self.client.subscribe("hello/locust", qos=1)

    @task
    def say_hello(self):
        self.client.publish("hello/locust", "héllo", qos=1)


class V5User(V311User):
    protocol = paho.mqtt.client.MQTTv5
"""


def test_mqtt_subscribe_qos1_and_v5_record_what_the_broker_acknowledged(
    tmp_path, run_lcore
) -> None:
    need_module("paho.mqtt")
    with running_mosquitto(tmp_path) as broker:
        subscriber = Subscriber(broker.port, "hello/locust")
        try:
            prefix = tmp_path / "run"
            proc = run_lcore(
                "-f", str(write(tmp_path, SUBSCRIBE_AND_QOS.format(port=broker.port))),
                "--headless", "-u", "4", "-r", "10", "-t", "3s", "--master-bind-port",
                str(free_port()), "--no-web", "--csv", str(prefix),
            )  # fmt: skip
            assert proc.wait(60) == 0, proc.output[-4000:]
            assert "Traceback" not in proc.output, proc.output[-4000:]
            rows = read_rows(prefix)
            published = int(rows[("MQTT", "publish:1:hello/locust")]["Request Count"])
            assert int(rows[("MQTT", "publish:1:hello/locust")]["Failure Count"]) == 0
            # QoS 1: recorded on the broker's PUBACK, delivered to the subscriber
            wait_until(lambda: subscriber.count >= published, timeout=10)
            assert subscriber.count == published > 20
        finally:
            subscriber.close()
    allowed = rows[("MQTT", "subscribe:1:hello/locust")]
    assert (int(allowed["Request Count"]), int(allowed["Failure Count"])) == (4, 0)
    # connections authenticated with the users' username, MQTT 3.1.1 and 5 alike
    assert int(rows[("MQTT", "connect")]["Request Count"]) == 4
    log = broker.log_text()
    assert (
        log.count("(p2, c1, k60, u'lcore')") == 2 and log.count("(p5, c1, k60, u'lcore')") == 2
    ), log
    # messages the users receive on their subscription are not requests
    assert set(rows) - {("", "Aggregated")} == {
        ("MQTT", "connect"),
        ("MQTT", "subscribe:1:hello/locust"),
        ("MQTT", "publish:1:hello/locust"),
    }
