"""--otel / --out otlp=URL: the /metrics series as OpenTelemetry metrics, encoded by the SDK in
memory, then real runs pushing to OTLP receivers this test runs on loopback (OTLP/HTTP and
gRPC, decoded with opentelemetry-proto: no collector binary is installable here)."""

from __future__ import annotations

import http.server
import textwrap
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest
from test_prometheus import EXPECTED, FIXED, USERS, free_port, recorded_runtime

from lcore.exporters.otlp import OtlpMetrics
from lcore.exporters.prometheus import make_registry

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics  # noqa: E402
from opentelemetry.proto.collector.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)


def points(request: Any) -> dict[str, list[tuple[dict[str, str], Any]]]:
    """metric name -> [(attributes, data point)] of an ExportMetricsServiceRequest."""
    out: dict[str, list[tuple[dict[str, str], Any]]] = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                for p in getattr(m, kind).data_points:
                    attrs = {a.key: a.value.string_value for a in p.attributes}
                    out.setdefault(m.name, []).append((attrs, p))
    return out


def number(point: Any) -> float:
    return point.as_int if point.WhichOneof("value") == "as_int" else point.as_double


def resource_of(request: Any) -> dict[str, str]:
    return {a.key: a.value.string_value for a in request.resource_metrics[0].resource.attributes}


def test_the_metrics_keep_the_names_and_labels_of_metrics_endpoint() -> None:
    runtime = recorded_runtime()
    output = OtlpMetrics(
        make_registry(runtime), [], labels=lambda: {"run_id": "r1", "env": "ci"},
        start_time=lambda: 1700000000.0, clock=lambda: 1700000010.0,
    )  # fmt: skip
    request = encode_metrics(output.metrics_data())
    found = points(request)
    (cart,) = [(a, p) for a, p in found["lcore_requests"] if a.get("name") == "/cart"]
    attrs, point = cart
    assert attrs == {"method": "GET", "name": "/cart", "run_id": "r1", "env": "ci"}
    assert number(point) == 8 and point.start_time_unix_nano == 1700000000 * 10**9
    metric = next(m for m in request.resource_metrics[0].scope_metrics[0].metrics if m.name == "lcore_requests")
    assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == 2  # cumulative
    (times,) = [p for a, p in found["lcore_response_time_seconds"] if a.get("name") == "/cart"]
    assert times.count == 8 and sum(times.bucket_counts) == 8
    assert list(times.explicit_bounds)[:3] == [0.001, 0.0025, 0.005]
    assert list(times.bucket_counts)[0] == 1  # the 0.5 ms request
    quantiles = {a["quantile"] for a, _ in found["lcore_response_time_quantile_seconds"]}
    assert {"0.5", "0.99"} <= quantiles
    # "Aggregated" has no method (an empty label is no label, as in a scrape)
    assert any(a.get("name") == "Aggregated" and "method" not in a for a, _ in found["lcore_response_time_quantile_seconds"])
    assert found["lcore_build_info"][0][0]["version"]
    assert resource_of(request)["service.name"] == "lcore"


# -- real runs, real receivers ---------------------------------------------------------------


class Received:
    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def add(self, body: bytes, headers: dict[str, str]) -> None:
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        request.ParseFromString(body)
        with self.lock:
            self.requests.append(request)
            self.headers.append(headers)


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/metrics" and self.headers.get("Content-Type") == "application/x-protobuf":
                received.add(body, dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Received]]:
    grpc = pytest.importorskip("grpc")
    received = Received()

    class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the service's name
            received.add(request.SerializeToString(), dict(context.invocation_metadata()))
            return metrics_service_pb2.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)


def run_fixed(tmp_path: Any, target: Any, run_lcore: Any, *extra: str, env: dict[str, str]) -> None:
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(FIXED))
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "--processes", "2", "-u", str(USERS),
        "-r", str(USERS), "-t", "3s", "--no-web", "--stats-interval", "0.5", "--push-interval", "1",
        "--label", "env=ci", *extra, env=env,
    )  # fmt: skip
    assert proc.wait(60) in (0, 1), proc.output  # 1: /fail failed, as intended
    assert sum(target.counts().values()) == EXPECTED
    assert "Traceback" not in proc.output, proc.output


def check_last_export(received: Received) -> None:
    assert len(received.requests) >= 2, len(received.requests)  # while it ran, and at the end
    last = points(received.requests[-1])
    requests = last["lcore_requests"]
    assert sum(number(p) for _, p in requests) == EXPECTED
    assert {a["env"] for a, _ in requests} == {"ci"}
    (run_id,) = {a["run_id"] for a, _ in requests}
    assert run_id
    (fail,) = [p for a, p in last["lcore_request_failures"] if a["name"] == "/fail"]
    assert number(fail) == USERS
    (slow,) = [p for a, p in last["lcore_response_time_seconds"] if a["name"] == "/slow"]
    assert slow.count == USERS * 10 == sum(slow.bucket_counts)


@pytest.mark.integration
def test_a_run_pushes_over_otlp_http(tmp_path, target, run_lcore, http_receiver) -> None:
    url, received = http_receiver
    run_fixed(
        tmp_path, target, run_lcore, "--out", f"otlp={url}",
        env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_HEADERS": "x-team=load"},
    )  # fmt: skip
    check_last_export(received)
    assert received.headers[-1].get("x-team") == "load"
    assert resource_of(received.requests[-1])["service.name"] == "lcore"


@pytest.mark.integration
def test_otel_pushes_over_grpc_as_locust_does_by_default(tmp_path, target, run_lcore, grpc_receiver) -> None:
    url, received = grpc_receiver
    run_fixed(
        tmp_path, target, run_lcore, "--otel",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "checkout-load"},
    )  # fmt: skip
    check_last_export(received)
    assert resource_of(received.requests[-1])["service.name"] == "checkout-load"
