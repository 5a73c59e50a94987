"""Users for protocols other than HTTP, with Locust's ``locust.contrib`` names.

Each module wraps one client library (an optional extra: ``pip install 'lcore[postgres]'``)
and records every call through ``environment.events.request``, exactly as ``lcore.http``
records an HTTP request: a request type, a name, the time in milliseconds, a size, and the
exception of a failure. ``_record`` holds the one timing helper they share.

    lcore.contrib.postgres   PostgresUser  (psycopg)
    lcore.contrib.mqtt       MqttUser, MqttClient  (paho-mqtt)
    lcore.contrib.socketio   SocketIOUser, SocketIOClient  (python-socketio)
    lcore.contrib.dns        DNSUser  (dnspython)
    lcore.contrib.oai        OpenAIUser  (openai)
    lcore.contrib.mongodb    MongoDBUser  (pymongo)
    lcore.contrib.qdrant     QdrantUser  (qdrant-client)
    lcore.contrib.milvus     MilvusUser  (pymilvus)

and, needing nothing: ``lcore.contrib.csv_request_logger`` (CsvRequestLogger: one CSV row per
request, from every worker into one file).

Importing this package imports none of them.
"""
