"""Every background task has an owner: a loop that dies is logged, stops the test, and is raised
again by close() — on the master (asyncio) and on the worker (gevent)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from test_engine import free_port, write

from lcore import hub_loop
from lcore.env import Environment
from lcore.master import MasterRuntime
from lcore.task_owner import TaskFailed, TaskOwner
from lcore.users import User, task


def test_owner_logs_reports_and_raises_a_dead_task(caplog) -> None:
    died: list[str] = []

    async def main() -> None:
        owner = TaskOwner(lambda name, error: died.append(name))

        async def broken() -> None:
            raise ValueError("on purpose")

        async def forever() -> None:
            await asyncio.sleep(3600)

        owner.spawn(forever(), "sleeper")
        owner.spawn(broken(), "broken loop")
        await asyncio.sleep(0.01)
        assert died == ["broken loop"]
        with pytest.raises(TaskFailed, match="broken loop died: ValueError: on purpose"):
            await owner.close()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert "broken loop died" in caplog.text and "Traceback" in caplog.text


def test_owner_forgets_tasks_that_end_or_are_cancelled() -> None:
    async def main() -> None:
        owner = TaskOwner()
        owner.spawn(asyncio.sleep(0), "quick")
        slow = owner.spawn(asyncio.sleep(3600), "slow")
        await asyncio.sleep(0.01)
        slow.cancel()
        await owner.close()  # nothing failed: nothing raised
        assert owner.failure is None

    asyncio.run(main())


class Idle(User):
    @task
    def nothing(self) -> None:
        pass


@pytest.mark.parametrize("loop", ["_receive_loop", "_heartbeat_loop", "_ramp_loop", "_usage_loop"])
def test_a_master_loop_that_dies_stops_the_test(tmp_path, loop) -> None:
    runtime = MasterRuntime(
        Environment(user_classes=[Idle]), endpoints=[f"ipc://{tmp_path}/m.sock"], digest="d"
    )

    async def broken() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError(f"{loop} broke on purpose")

    setattr(runtime, loop, broken)

    async def main() -> str:
        await runtime.serve()
        started = time.monotonic()
        await asyncio.wait_for(runtime.wait_quit(), timeout=10)  # the owner made it quit
        assert time.monotonic() - started < 10
        with pytest.raises(TaskFailed) as raised:
            await runtime.close()
        return str(raised.value)

    message = hub_loop.run(main())
    assert "broke on purpose" in message


BREAKS_A_WORKER_LOOP = """
from locust import HttpUser, constant, events, task
from locust.runners import WorkerRunner


@events.init.add_listener
def break_heartbeats(environment, runner, **kwargs):
    if isinstance(runner, WorkerRunner):
        def broken():
            raise RuntimeError("cpu sampling broke on purpose")
        runner.cpu.sample = broken


class Steady(HttpUser):
    wait_time = constant(0.1)

    @task
    def page(self):
        self.client.get("/owned")
"""


@pytest.mark.integration
def test_a_worker_loop_that_dies_ends_the_worker_with_an_error(tmp_path, target, run_lcore) -> None:
    locustfile = write(tmp_path, BREAKS_A_WORKER_LOOP)
    port = free_port()
    master = run_lcore(
        "-f", str(locustfile), "-H", target.url, "--master", "--headless", "--no-web",
        "--expect-workers", "1", "-u", "1", "-r", "10", "-t", "30s", "--master-bind-port", str(port),
    )  # fmt: skip
    worker = run_lcore("-f", str(locustfile), "--worker", "--master-port", str(port))
    assert worker.wait(30) == 1, worker.output[-3000:]
    assert "its heartbeat loop died, stopping: cpu sampling broke on purpose" in worker.output
    assert "Traceback" in worker.output  # logged with its traceback, once
    assert master.wait(30) == 0, master.output[-3000:]
