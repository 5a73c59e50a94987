"""``locust.opentelemetry.setup_opentelemetry``: Locust's metric names from lcore (a process of
its own: OpenTelemetry's global meter provider can be set once per process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey; monkey.patch_all()
    import json
    import lcore.compat; lcore.compat.install()
    import locust
    from locust import User, constant, task
    from locust.env import Environment
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from locust.opentelemetry import MAX_REQUEST_NAMES, setup_opentelemetry

    class Idle(User):
        wait_time = constant(1)

        @task
        def nothing(self):
            pass

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    env = Environment(user_classes=[Idle], events=locust.events)
    runner = env.create_local_runner()
    assert setup_opentelemetry("locustfile.py", None)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.start(3, spawn_rate=100)
    runner.spawning_greenlet.join(timeout=5)
    for i in range(MAX_REQUEST_NAMES + 5):
        env.events.request.fire(request_type="GET", name=f"/n{i}", response_time=250,
                                response_length=0, exception=None, context={})
    env.events.request.fire(request_type="GET", name="/n0", response_time=10, response_length=0,
                            exception=ConnectionRefusedError(111, "refused"), context={})
    found = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                found[m.name] = [(dict(p.attributes), getattr(p, "value", None), getattr(p, "count", None),
                                  getattr(p, "sum", None)) for p in m.data.data_points]
    runner.quit()
    print(json.dumps(found))
    """
)


def test_setup_opentelemetry_records_locusts_user_count_and_durations(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["locust.users.count"] == [[{"user_class": "Idle"}, 3, None, None]]
    points = {p[0]["name"] + p[0].get("error.type", ""): p for p in found["locust.client.duration"]}
    assert points["/n1"][2] == 1 and points["/n1"][3] == 0.25  # seconds
    assert points["Too many unique request names"][2] == 5  # past the first 20 names
    assert points["/n0ConnectionRefusedError"][2] == 1
