"""Locust's library mode: an Environment, a local runner, users in this very process."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_local_runner_runs_users_in_process(target) -> None:
    script = textwrap.dedent(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from lcore import compat
        compat.install()
        from locust import HttpUser, task, constant, events
        from locust.env import Environment
        from locust.stats import stats_printer, stats_history
        from locust.log import setup_logging

        setup_logging("INFO")

        class U(HttpUser):
            host = {target.url!r}
            wait_time = constant(0.01)
            @task
            def t(self):
                self.client.get("/lib")

        env = Environment(user_classes=[U], events=events)
        runner = env.create_local_runner()
        web_ui = env.create_web_ui("127.0.0.1", 0)
        gevent.spawn(stats_printer(env.stats))
        gevent.spawn(stats_history, env.runner)
        runner.start(3, spawn_rate=30)
        gevent.spawn_later(2.5, runner.quit)
        runner.greenlet.join()
        web_ui.stop()
        print("TOTAL", env.stats.total.num_requests, env.stats.total.num_failures, len(env.stats.history))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("TOTAL"))
    _, requests, failures, samples = line.split()
    assert int(requests) == target.counts()[("GET", "/lib")] > 10
    assert int(failures) == 0
    assert int(samples) >= 1
