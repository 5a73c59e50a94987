"""The names Locust's ``locust.contrib`` modules export resolve, under lcore, to lcore's own
classes with Locust's attributes and defaults (so a locustfile that subclasses them and sets
their attributes runs unchanged)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from contrib_servers import need_module

CHECKS = {
    "postgres": ("psycopg", "from locust.contrib.postgres import PostgresUser, PostgresClient\n"
                 "assert PostgresUser.abstract and hasattr(PostgresClient, 'execute_query')"),
    "mqtt": ("paho.mqtt", "from locust.contrib.mqtt import MqttUser, MqttClient, PublishedMessageContext, REQUEST_TYPE, SUBACK_FAILURE\n"
             "import paho.mqtt.client as m\n"
             "assert (MqttUser.host, MqttUser.port, MqttUser.transport, MqttUser.ws_path) == ('localhost', 1883, 'tcp', '/mqtt')\n"
             "assert MqttUser.client_cls is MqttClient and MqttUser.protocol == m.MQTTv311 and MqttUser.use_loop_selectors is False\n"
             "assert (MqttUser.client_id, MqttUser.username, MqttUser.password, MqttUser.tls_context) == (None, None, None, None)\n"
             "assert (REQUEST_TYPE, SUBACK_FAILURE) == ('MQTT', 0x80) and issubclass(MqttClient, m.Client)\n"
             "assert PublishedMessageContext._fields == ('qos', 'topic', 'start_time', 'payload_size')"),
    "socketio": ("socketio", "from locust.contrib.socketio import SocketIOUser, SocketIOClient\n"
                 "import socketio\nassert issubclass(SocketIOClient, socketio.Client) and SocketIOUser.options == {}"),
    "dns": ("dns", "from locust.contrib.dns import DNSUser, DNSClient\nassert callable(DNSClient(None).udp)"),
    "oai": ("openai", "from locust.contrib.oai import OpenAIUser, OpenAIClient\n"
            "import openai\nassert issubclass(OpenAIClient, openai.OpenAI) and hasattr(OpenAIClient, 'rename_request')"),
    "mongodb": ("pymongo", "from locust.contrib.mongodb import MongoDBUser, MongoDBClient\n"
                "import pymongo\nassert issubclass(MongoDBClient, pymongo.MongoClient)"),
    "qdrant": ("qdrant_client", "from locust.contrib.qdrant import QdrantUser, QdrantLocustClient\n"
               "assert (QdrantUser.url, QdrantUser.timeout, QdrantUser.collection_name) == ('http://localhost:6333', 60, None)\n"
               "assert all(hasattr(QdrantUser, n) for n in ('upsert', 'search', 'scroll', 'delete', 'api_key', 'vectors_config', 'client_kwargs', 'collection_kwargs'))"),
    "milvus": ("pymilvus", "from locust.contrib.milvus import MilvusUser, MilvusV2Client\n"
               "import inspect\nsig = inspect.signature(MilvusUser.__init__).parameters\n"
               "assert sig['uri'].default == 'http://localhost:19530' and sig['collection_name'].default == 'test_collection'\n"
               "assert all(hasattr(MilvusUser, n) for n in ('insert', 'upsert', 'search', 'hybrid_search', 'query', 'delete'))"),
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(CHECKS))
def test_locust_contrib_names(module: str) -> None:
    library, check = CHECKS[module]
    need_module(library)
    code = f"import lcore.compat\nlcore.compat.install()\n{check}\nprint('ok')\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
