"""Locust's library mode: an Environment, a local runner, users in this very process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


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


# -- environment.stats is current in the process that records ---------------------------------


def _client_user(url: str):
    from lcore import HttpUser

    class ClientUser(HttpUser):
        host = url

    return ClientUser


def test_env_stats_count_a_request_as_soon_as_it_completed_without_a_runner(target, request) -> None:
    from lcore.env import Environment

    user_class = _client_user(target.url)
    env = Environment(user_classes=[user_class])
    user = user_class(env)
    request.addfinalizer(user.client.close)
    user.client.get("/now")
    entry = env.stats.get("/now", "GET")
    assert entry.num_requests == 1 and env.stats.total.num_requests == 1
    user.client.get("/now")
    user.client.get("/status/404")
    # an entry read before keeps counting, and failures and errors are current too
    assert entry.num_requests == 2
    assert env.stats.get("/status/404", "GET").num_failures == 1
    assert env.stats.num_failures == 1 and len(env.stats.errors) == 1


def test_local_runner_stats_are_current_between_flushes(target, request) -> None:
    from lcore.env import Environment

    user_class = _client_user(target.url)
    env = Environment(user_classes=[user_class])
    runner = env.create_local_runner()
    runner.stats_interval = 3600.0  # no periodic flush can help
    try:
        user = user_class(env)
        request.addfinalizer(user.client.close)
        user.client.get("/lib-now")
        assert env.stats.get("/lib-now", "GET").num_requests == 1
        assert runner.stats is env.stats and env.stats.total.num_requests == 1
    finally:
        runner.quit()


def test_run_single_user_stats_are_current_inside_the_task(target) -> None:
    import io

    from lcore import StopUser, task
    from lcore.env import Environment
    from lcore.event import Events
    from lcore.single import run_single_user

    seen: list[int] = []
    base = _client_user(target.url)

    class Once(base):  # type: ignore[misc, valid-type]
        @task
        def t(self) -> None:
            self.client.get("/single-now")
            seen.append(self.environment.stats.get("/single-now", "GET").num_requests)
            raise StopUser()

    env = Environment(user_classes=[Once], events=Events())
    run_single_user(Once, environment=env, out=io.StringIO(), loglevel=None)
    assert seen == [1]
    assert env.stats.total.num_requests == 1


def test_master_view_still_merges_only_what_workers_send() -> None:
    from lcore.stats import MergedStats, RequestStats

    merged = MergedStats()
    recorder = RequestStats()
    recorder.record("GET", "/w", 5.0, 10, None)
    assert merged.num_requests == 0  # nothing pulls a worker's recorder into the master's view
    merged.merge("w1", recorder.take_delta())
    assert merged.get("/w", "GET").num_requests == 1


def test_environment_with_no_user_classes_gives_a_local_runner() -> None:
    from lcore.env import Environment
    from lcore.exception import LocustError, RunnerAlreadyExistsError
    from lcore.runners import STATE_INIT

    env = Environment()
    runner = env.create_local_runner()
    try:
        assert env.runner is runner and runner.state == STATE_INIT and runner.user_count == 0
        with pytest.raises(RunnerAlreadyExistsError):
            env.create_local_runner()
        with pytest.raises(LocustError, match="No User classes"):
            runner.start(1, 1)
    finally:
        runner.quit()


def test_environment_defaults_match_locust() -> None:
    from lcore.env import Environment
    from lcore.event import events as global_events

    a, b = Environment(), Environment()
    assert a.events is not b.events and a.events is not global_events
    assert a.stop_timeout == 0.0 and a.catch_exceptions is True and a.user_classes == []
    assert Environment(events=global_events).events is global_events


def test_environment_refuses_two_user_classes_of_one_name() -> None:
    from lcore import User
    from lcore.env import Environment

    def make() -> type:
        class Same(User):
            pass

        return Same

    with pytest.raises(ValueError, match="The following user classes have the same class name: .*Same, .*Same"):
        Environment(user_classes=[make(), make()])


def test_request_measure_records_like_a_client_request() -> None:
    from lcore.env import Environment

    env = Environment()
    seen: list[dict] = []
    env.events.request.add_listener(lambda **kw: seen.append(kw))
    with env.events.request.measure("grpc", "Say", response_length=7, context={"k": 1}) as meta:
        meta["response_length"] = 9
    with env.events.request.measure("grpc", "Say"):
        raise ValueError("boom")  # recorded as a failure, not raised (as Locust's)
    entry = env.stats.get("Say", "grpc")
    assert entry.num_requests == 2 and entry.num_failures == 1
    assert entry.total_content_length == 9
    assert seen[0]["context"] == {"k": 1} and seen[0]["exception"] is None
    assert isinstance(seen[1]["exception"], ValueError) and seen[1]["response_time"] >= 0
    assert "start_time" in seen[0]


def test_assign_equal_weights_flattens_every_task_once() -> None:
    from lcore import TaskSet, User, task
    from lcore.env import Environment

    def outside(ts: object) -> None:
        pass

    class Inner(TaskSet):
        tasks = {outside: 3}

        @task(10)
        def index(self) -> None:
            pass

    class Heavy(User):
        weight = 5
        tasks = [Inner, Inner, outside]

        @task(4)
        def own(self) -> None:
            pass

    env = Environment(user_classes=[Heavy])
    env.assign_equal_weights()
    assert Heavy.weight == 1
    assert sorted(t.__name__ for t in Heavy.tasks) == ["index", "outside", "own"]


def test_run_single_user_takes_the_host_from_locust_host(target, monkeypatch) -> None:
    import io

    from lcore import HttpUser, StopUser, task
    from lcore.single import run_single_user

    class NoHost(HttpUser):
        @task
        def t(self) -> None:
            self.client.get("/from-env")
            raise StopUser()

    monkeypatch.setenv("LOCUST_HOST", target.url)
    monkeypatch.setattr(NoHost, "host", None)
    runner = run_single_user(NoHost, out=io.StringIO(), loglevel=None)
    assert target.counts()[("GET", "/from-env")] == 1
    assert runner.environment.single_user_instance is runner.user


def test_a_user_that_ends_closes_its_connections_and_a_shared_pool_stays_open(target) -> None:
    import io

    from conftest import wait_until

    from lcore import HttpUser, StopUser, task
    from lcore.env import Environment
    from lcore.event import Events
    from lcore.single import run_single_user

    shared = type("Pool", (), {})()

    class Once(HttpUser):
        host = target.url

        @task
        def t(self) -> None:
            self.client.get("/once")
            raise StopUser()

    class Sharing(Once):
        pool_manager = shared

    run_single_user(Once, environment=Environment(user_classes=[Once], events=Events()), out=io.StringIO(), loglevel=None)
    # its keep-alive connection is closed when its loop ends, not when it is garbage
    wait_until(lambda: target.open_connections == 0, timeout=10)
    runner = run_single_user(Sharing, environment=Environment(user_classes=[Sharing], events=Events()), out=io.StringIO(), loglevel=None)
    assert target.open_connections == 1  # other users of the pool may still use it
    runner.user.client.close()
    wait_until(lambda: target.open_connections == 0, timeout=10)


def test_library_runner_never_refills_spent_users_and_stops_on_stop_test(target, tmp_path) -> None:
    script = textwrap.dedent(
        f"""
        from gevent import monkey
        monkey.patch_all()
        import time
        import gevent
        from locust import HttpUser, task, constant
        from locust.env import Environment
        from locust.exception import StopTest, StopUser

        class Three(HttpUser):
            host = {target.url!r}
            wait_time = constant(0.01)
            def on_start(self):
                self.made = 0
            @task
            def t(self):
                self.client.get("/lib-three")
                self.made += 1
                if self.made == 3:
                    raise StopUser()

        env = Environment(user_classes=[Three])
        runner = env.create_local_runner()
        runner.start(4, spawn_rate=4)  # four steps of one user: no step refills a spent slot
        gevent.sleep(2)
        assert env.stats.get("/lib-three", "GET").num_requests == 12, env.stats.total.num_requests
        assert runner.user_count == 0
        runner.quit()

        class Stopper(HttpUser):
            host = {target.url!r}
            wait_time = constant(0.01)
            @task
            def t(self):
                self.client.get("/lib-stop")
                raise StopTest("done here")

        env = Environment(user_classes=[Stopper])
        runner = env.create_local_runner()
        started = time.monotonic()
        runner.start(2, spawn_rate=100)
        runner.greenlet.join(timeout=10)
        assert time.monotonic() - started < 5 and runner.state == "stopped", runner.state
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
    assert target.counts()[("GET", "/lib-three")] == 12


def test_python_locustfile_with_dash_h_runs_a_single_user(target, tmp_path) -> None:
    """Locust's debugging recipe: ``python locustfile.py -H URL`` with run_single_user in it;
    no lcore process, ``import locust`` through the site-packages alias."""
    script = tmp_path / "debug_me.py"
    script.write_text(
        textwrap.dedent(
            """
            from locust import HttpUser, run_single_user, task
            from locust.exception import StopUser


            class Debugged(HttpUser):
                @task
                def page(self):
                    self.client.get("/debug-me")
                    raise StopUser()


            if __name__ == "__main__":
                run_single_user(Debugged)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script), "-H", target.url], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "/debug-me" in result.stdout
    assert target.counts()[("GET", "/debug-me")] == 1


def test_local_runners_deliver_messages_to_themselves_without_the_worker_runtime() -> None:
    script = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import sys
        from lcore import User, constant, task
        from lcore.env import Environment
        from lcore.single import SingleUserRunner

        class U(User):
            wait_time = constant(1)
            @task
            def t(self):
                pass

        got = []
        for runner in (Environment(user_classes=[U]).create_local_runner(),
                       SingleUserRunner(Environment(user_classes=[U]))):
            runner.register_message("ping", lambda environment, msg: got.append((msg.type, msg.data, msg.node_id)))
            runner.register_message("fast", lambda environment, msg: got.append(msg.type), concurrent=True)
            runner.send_message("ping", 1)
            runner.send_message("fast")
            runner.send_message("unknown")
        print("GOT", got)
        print("LOADED", sorted(m for m in ("lcore.worker", "zmq") if m in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # delivered at once, concurrent or not, as Locust's LocalRunner does; an unknown type is ignored
    assert "GOT [('ping', 1, 'local'), 'fast', ('ping', 1, 'local'), 'fast']" in result.stdout
    assert "LOADED []" in result.stdout  # a custom message no longer imports the worker (zmq)


def test_spawning_greenlet_ends_with_every_user_started_and_the_run_running() -> None:
    """Locust's ``runner.spawning_greenlet.join()``: afterwards the users are all there, the
    state is running and spawning_complete has fired once."""
    script = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import gevent
        from lcore import compat
        compat.install()
        from locust import User, task, constant, events
        from locust.env import Environment

        class Idle(User):
            wait_time = constant(1)
            @task
            def nothing(self):
                pass

        completed = []
        env = Environment(user_classes=[Idle], events=events)
        env.events.spawning_complete.add_listener(lambda user_count: completed.append(user_count))
        runner = env.create_local_runner()
        runner.start(3, spawn_rate=100)
        runner.spawning_greenlet.join(timeout=5)
        print("AFTER", runner.user_count, runner.state, completed)
        runner.quit()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("AFTER"))
    assert line == "AFTER 3 running [3]"
