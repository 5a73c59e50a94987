"""The master's heartbeat and lost-worker logic on a MockClock: in memory, exact, milliseconds.

The master gets a clock it does not own (lcore.clock); these tests move it by hand and talk to
the master as fake workers would, through the messages it handles, and record what it sends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lcore import hub_loop
from lcore import protocol as p
from lcore._version import PROTOCOL_VERSION, __version__
from lcore.clock import MockClock, SystemClock
from lcore.env import Environment
from lcore.master import MasterRuntime
from lcore.stats_delta import RequestStats
from lcore.users import User, task


class Idle(User):
    @task
    def nothing(self) -> None:
        pass


class RecordingMaster(MasterRuntime):
    """A master without a socket: what it would send to each worker is kept in ``sent``."""

    def __init__(self, clock: MockClock, **kwargs: Any) -> None:
        super().__init__(
            Environment(user_classes=[Idle]), endpoints=[], digest="d", clock=clock, **kwargs
        )
        self.sent: list[tuple[str, p.Message]] = []

    def _send(self, node_id: str, message: p.Message) -> None:
        self.sent.append((node_id, message))

    def beats_to(self, node_id: str) -> int:
        return sum(1 for n, m in self.sent if n == node_id and isinstance(m, p.Heartbeat))

    def hello(self, node_id: str) -> None:
        self._handle(node_id, p.Hello(PROTOCOL_VERSION, __version__, "box", 100, 1, "d"))

    def beat(self, node_id: str) -> None:
        self._handle(node_id, p.Heartbeat("ready", 0.0, 0))


def run_with_heartbeats(
    test: Callable[[RecordingMaster, MockClock], Awaitable[None]], **kwargs: Any
) -> float:
    """Run ``test`` against a master whose heartbeat loop runs on a MockClock; returns the
    real seconds it took."""

    async def main() -> None:
        clock = MockClock()
        master = RecordingMaster(clock, **kwargs)
        master.owner.spawn(master._heartbeat_loop(), "heartbeat loop")
        try:
            await test(master, clock)
        finally:
            await master.close()

    started = time.monotonic()
    hub_loop.run(main())
    return time.monotonic() - started


def test_a_silent_worker_is_lost_one_interval_after_the_timeout(caplog) -> None:
    async def test(master: RecordingMaster, clock: MockClock) -> None:
        master.hello("talks")
        master.hello("silent")
        for _ in range(3):
            master.beat("talks")
            await clock.advance(1.0)
        # t = 3 s: silent for exactly the timeout (3 s) is not lost yet
        assert set(master.workers) == {"talks", "silent"}
        assert master.beats_to("silent") == 3
        master.beat("talks")
        await clock.advance(1.0)
        # t = 4 s: the heartbeat loop finds it silent for 4 s > 3 s
        assert set(master.workers) == {"talks"}
        assert [n.id for n in master.lost_workers] == ["silent"]
        assert master.beats_to("silent") == 3 and master.beats_to("talks") == 4

    with caplog.at_level(logging.WARNING, logger="lcore.master"):
        took = run_with_heartbeats(test, heartbeat_interval=1.0, heartbeat_timeout=3.0)
    assert "Worker silent (box, pid 100) lost: silent for 4.0 s" in caplog.text
    assert took < 5  # virtual seconds: the test itself waits for none of them


def test_a_worker_that_keeps_talking_is_never_lost() -> None:
    async def test(master: RecordingMaster, clock: MockClock) -> None:
        master.hello("w")
        for _ in range(120):  # five virtual minutes, a message every 2.5 s
            await clock.advance(2.5)
            master.beat("w")
        assert "w" in master.workers and not master.lost_workers
        assert master.beats_to("w") == 300  # one per second, every second

    run_with_heartbeats(test, heartbeat_interval=1.0, heartbeat_timeout=3.0)


def test_any_message_counts_as_a_sign_of_life() -> None:
    async def test(master: RecordingMaster, clock: MockClock) -> None:
        master.hello("w")
        recorder = RequestStats()
        for seq in range(1, 11):
            await clock.advance(2.0)
            recorder.record("GET", "/", 1.0, 0, None)
            master._handle("w", p.StatsReport(seq, recorder.take_delta().to_wire(), {}))
        assert "w" in master.workers and not master.lost_workers
        assert master.stats_merged.total.num_requests == 10

    run_with_heartbeats(test, heartbeat_interval=1.0, heartbeat_timeout=3.0)


def test_the_timeout_and_interval_are_the_masters_own() -> None:
    async def test(master: RecordingMaster, clock: MockClock) -> None:
        master.hello("w")
        await clock.advance(30.0)
        assert "w" in master.workers and master.beats_to("w") == 6  # every 5 s
        await clock.advance(5.0)  # 35 s > 30 s
        assert [n.id for n in master.lost_workers] == ["w"]

    run_with_heartbeats(test, heartbeat_interval=5.0, heartbeat_timeout=30.0)


def test_a_lost_worker_that_speaks_again_rejoins_and_its_late_delta_counts_once(caplog) -> None:
    async def test(master: RecordingMaster, clock: MockClock) -> None:
        master.hello("w")
        recorder = RequestStats()
        recorder.record("GET", "/", 1.0, 0, None)
        first = p.StatsReport(1, recorder.take_delta().to_wire(), {})
        master._handle("w", first)
        await clock.advance(4.0)  # SIGSTOPped, as it were
        assert [n.id for n in master.lost_workers] == ["w"]
        # SIGCONT: its late delta arrives (merged), then its hello again
        recorder.record("GET", "/", 1.0, 0, None)
        late = p.StatsReport(2, recorder.take_delta().to_wire(), {})
        master._handle("w", late)
        master._handle("w", late)  # a replay is not merged twice
        master.hello("w")
        assert "w" in master.workers and not master.lost_workers
        master._handle("w", first)  # nor is the first one, after the rejoin
        assert master.stats_merged.total.num_requests == 2
        for _ in range(10):
            master.beat("w")
            await clock.advance(1.0)
        assert "w" in master.workers  # and it is not lost again while it speaks

    with caplog.at_level(logging.INFO, logger="lcore.master"):
        run_with_heartbeats(test, heartbeat_interval=1.0, heartbeat_timeout=3.0)
    assert "Worker w (box) rejoined" in caplog.text


def last_target(master: RecordingMaster, node_id: str) -> dict[str, int] | None:
    spawns = [m for n, m in master.sent if n == node_id and isinstance(m, p.Spawn)]
    return spawns[-1].targets if spawns else None


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    # the ramp loop's own waits between two steps are short real ones (at most 0.1 s)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_lost_workers_users_go_to_the_others() -> None:
    async def test(master: RecordingMaster, clock: MockClock) -> None:
        master.hello("a")
        master.hello("b")
        master.owner.spawn(master._ramp_loop(), "ramp loop")
        master.start(4, 1000.0)
        await clock.advance(0.5)  # the ramp (4 users at 1000/s) is due in 4 ms
        await until(lambda: last_target(master, "a") == last_target(master, "b") == {"Idle": 2})
        for _ in range(4):
            master.beat("a")
            await clock.advance(1.0)
        assert [n.id for n in master.lost_workers] == ["b"]
        assert last_target(master, "a") == {"Idle": 4}

    run_with_heartbeats(test, heartbeat_interval=1.0, heartbeat_timeout=3.0)


def test_mock_clock_wakes_sleepers_in_deadline_order_each_at_its_deadline() -> None:
    async def main() -> list[tuple[str, float]]:
        clock = MockClock(start=100.0)
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic()))

        tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
        cancelled = asyncio.ensure_future(sleeper("never", 1.5))
        await asyncio.sleep(0)
        cancelled.cancel()
        await clock.advance(2.5)
        assert woke == [("a", 101.0), ("b", 102.0)] and clock.monotonic() == 102.5
        assert clock.sleepers == 1
        await clock.advance(10)
        await asyncio.gather(*tasks)
        with pytest.raises(ValueError, match="back"):
            await clock.advance(-1)
        return woke

    assert asyncio.run(main())[-1] == ("c", 103.0)


def test_the_master_runs_on_real_time_unless_told_otherwise() -> None:
    master = MasterRuntime(Environment(user_classes=[Idle]), endpoints=[], digest="d")
    assert isinstance(master.clock, SystemClock)
    assert abs(master.clock.monotonic() - time.monotonic()) < 1.0
