"""The open model's schedule (lcore.arrivals), in memory: exact, even, split, no drift."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from lcore.arrivals import ArrivalPlan, ClassMix, Segment, Share, WorkerSchedule, split_ceiling


def walk(schedule: WorkerSchedule, until: float) -> list[tuple[int, float]]:
    """Every arrival of ``schedule`` due before ``until``."""
    out = []
    while True:
        due = schedule.next_due()
        if due is None or due >= until:
            return out
        out.append(schedule.pop())


def schedules_for(plan: ArrivalPlan) -> dict[str, WorkerSchedule]:
    out = {}
    for worker, (share, _) in plan.shares().items():
        out[worker] = WorkerSchedule()
        out[worker].add(share)
    return out


@pytest.mark.parametrize(("rate", "workers"), [(1000.0, 1), (1000.0, 2), (300.0, 3), (0.5, 4), (3.0, 7)])
def test_merged_schedule_is_the_single_even_one(rate: float, workers: int) -> None:
    ids = [f"w{i}" for i in range(workers)]
    plan = ArrivalPlan(rate, 100, ids, at=50.0)
    merged = [a for s in schedules_for(plan).values() for a in walk(s, 50.0 + 20.0)]
    merged.sort()
    expected = math.ceil(20.0 * rate)
    assert [k for k, _ in merged] == list(range(expected))
    for k, t in merged:
        assert t == pytest.approx(50.0 + k / rate, abs=1e-9)


def test_fewer_users_than_workers_leaves_the_spare_workers_out() -> None:
    plan = ArrivalPlan(10.0, 2, ["a", "b", "c"], at=0.0)
    shares = plan.shares()
    assert [part for _, part in shares.values()] == [1, 1, 0]
    assert shares["c"][0].slots == 0
    schedules = schedules_for(plan)
    assert walk(schedules["c"], 10.0) == []
    ks = sorted(k for w in ("a", "b") for k, _ in walk(schedules[w], 10.0))
    assert ks == list(range(100))


def test_no_drift_far_into_a_run() -> None:
    schedule = WorkerSchedule()
    schedule.add(Share(Segment(1000.0, 0.0, 1000.0), 1, 2))
    schedule.skip_until(1000.0 + 3600.0)  # an hour in
    k, t = schedule.pop()
    assert k == 3_600_001 and t == pytest.approx(1000.0 + 3600.001, abs=1e-6)


def test_rate_changes_neither_skip_nor_repeat_and_count_the_integral() -> None:
    ids = ["a", "b"]
    plan = ArrivalPlan(100.0, 10, ids, at=0.0)
    schedules = schedules_for(plan)
    # each change reaches the workers before it applies, as the master's lead makes sure
    for at, rate in ((2.0, 250.0), (3.5, 0.0), (4.0, 40.0), (6.25, 1000.0)):
        plan.change(at, rate=rate)
        for worker, (share, _) in plan.shares().items():
            schedules[worker].add(share)
    runs = sorted(a for s in schedules.values() for a in walk(s, 7.0))
    ks = [k for k, _ in runs]
    assert ks == list(range(len(ks)))  # each index once, none missing
    integral = 100 * 2 + 250 * 1.5 + 0 + 40 * 2.25 + 1000 * 0.75
    assert abs(len(ks) - integral) <= 1
    times = [t for _, t in runs]
    assert times == sorted(times)
    # within a segment the spacing is 1/rate, across both workers
    seg = [t for t in times if 4.0 <= t < 6.25]
    assert all(b - a == pytest.approx(1 / 40.0) for a, b in zip(seg, seg[1:], strict=False))


def test_workers_joining_and_leaving_mid_run_share_every_arrival_once() -> None:
    plan = ArrivalPlan(200.0, 100, ["a"], at=0.0)
    schedules = schedules_for(plan)
    for at, workers in ((1.0, ["a", "b"]), (2.0, ["a", "b", "c"]), (3.0, ["b", "c"])):
        plan.change(at, workers=workers)
        for worker, (share, _) in plan.shares().items():
            schedules.setdefault(worker, WorkerSchedule()).add(share)
    runs = []
    for worker, schedule in schedules.items():
        # "a" left at 3.0: it runs nothing of the last segment (it was not told of it)
        until = 3.0 if worker == "a" else 4.0
        runs += walk(schedule, until)
    ks = sorted(k for k, _ in runs)
    assert ks == list(range(800))


def test_a_share_received_late_repeats_nothing_on_this_worker() -> None:
    schedule = WorkerSchedule()
    schedule.add(Share(Segment(0.0, 0.0, 100.0), 0, 1))
    ran = walk(schedule, 1.05)  # arrivals 0..104 ran under the old share
    # the new share applied from 1.0 (arrival 100) with two workers: this worker is slot 0
    schedule.add(Share(Segment(1.0, 100.0, 100.0), 0, 2))
    ran += walk(schedule, 2.0)
    ks = [k for k, _ in ran]
    assert len(ks) == len(set(ks))
    assert ks[:105] == list(range(105)) and ks[105] == 106 and all(k % 2 == 0 for k in ks[105:])


def test_a_rate_of_zero_pauses_and_resumes_where_it_was() -> None:
    schedule = WorkerSchedule()
    schedule.add(Share(Segment(0.0, 0.0, 10.0), 0, 1))
    assert len(walk(schedule, 1.0)) == 10
    schedule.add(Share(Segment(1.0, 10.0, 0.0), 0, 1))
    assert schedule.next_due() is None
    schedule.add(Share(Segment(5.0, 10.0, 10.0), 0, 1))
    k, t = schedule.pop()
    assert (k, t) == (10, 5.0)


def test_skip_until_leaves_unused_slots_behind() -> None:
    schedule = WorkerSchedule()
    schedule.add(Share(Segment(0.0, 0.0, 10.0), 1, 2))  # odd slots, 0.1 s apart: every 0.2 s
    schedule.skip_until(0.55)
    assert schedule.pop() == (7, pytest.approx(0.7))
    schedule.skip_until(0.0)  # never backwards
    assert schedule.pop() == (9, pytest.approx(0.9))


def test_class_mix_follows_the_weights_on_every_worker() -> None:
    mix = ClassMix({"A": 3, "B": 1, "Off": 0})
    assert mix.names == ("A", "B")
    total = Counter(mix.class_of(k) for k in range(10_000))
    assert abs(total["A"] - 7500) <= 5
    for slot in range(4):  # one worker of four: still 3:1, not all of one class
        part = Counter(mix.class_of(k) for k in range(slot, 10_000, 4))
        assert abs(part["A"] - 1875) <= 5
    with pytest.raises(ValueError, match="weight"):
        ClassMix({"A": 0})


def test_split_ceiling() -> None:
    assert split_ceiling(10, 4) == [3, 3, 2, 2]
    assert split_ceiling(1, 3) == [1, 0, 0]
    assert split_ceiling(5, 0) == []


def test_the_schedule_messages_round_trip_and_refuse_what_does_not_fit() -> None:
    from lcore import protocol as p

    message = p.Arrivals(3, 1e9, 12.5, 300.0, 1, 2, 50, {"A": 3, "B": 1}, "http://x", {})
    assert p.decode(p.encode(message, "master")) == (message, "master")
    cap = p.RateCap(1e9, 0.0, 250.0, 0, 1)
    assert p.decode(p.encode(cap, "master")) == (cap, "master")
    for bad in (
        [3, 1e9, 0.0, float("nan"), 0, 1, 5, {}],  # a rate that is no number
        [3, 1e9, 0.0, 10.0, 2, 2, 5, {}],  # a slot beyond the slots
        [3, 1e9, -1.0, 10.0, 0, 1, 5, {}],  # a negative position
        [3, 1e9, 0.0, 10.0, 0, 1, 5, {"A": "x"}],  # a weight that is no number
    ):
        with pytest.raises(p.ProtocolError):
            p.decode(_raw("arrivals", bad))


def _raw(msg_type: str, values: list) -> bytes:
    import msgpack

    return msgpack.packb([msg_type, "master", values], use_bin_type=True)


def test_a_ramping_arrival_rate_ticks_the_mean_of_the_coming_second() -> None:
    from lcore import ArrivalRate, RampingArrivalRate

    class Ramp(RampingArrivalRate):
        stages = [(3, 300), (2, 300), (1.5, 0)]
        users = 50

    shape = Ramp()
    now = [0.0]
    shape.get_run_time = lambda: now[0]  # type: ignore[method-assign]
    ticks = []
    while (tick := shape.tick()) is not None:
        assert isinstance(tick, ArrivalRate) and tick.users == 50
        ticks.append(tick.rate)
        now[0] += 1.0
    # 0 -> 300 over 3 s: means 50, 150, 250; then 300, 300; then 300 -> 0 over 1.5 s: 200,
    # and the last half second's 25 arrivals over the last tick's second
    assert ticks == pytest.approx([50, 150, 250, 300, 300, 200, 25])
    assert sum(ticks) == pytest.approx(3 * 150 + 2 * 300 + 1.5 * 150)
