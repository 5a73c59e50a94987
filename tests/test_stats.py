"""Worker recorder, deltas on the wire, and the master's merged view."""

from __future__ import annotations

import math
import random
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lcore.exception import CatchResponseError
from lcore.histogram import MAX_VALUE_US, Histogram, quantile_rank
from lcore.stats import PERCENTILES, DeltaError, MergedStats, RequestStats, StatsDelta, error_text
from lcore.stats_delta import MAX_TEXT_LENGTH


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# (method, name, response time ms, length, error or None)
requests = st.tuples(
    st.sampled_from(["GET", "POST", ""]),
    st.sampled_from(["/", "/a", "/b?x=1", "ünïcode"]),
    st.one_of(st.floats(0, 120_000), st.integers(0, 5000)),
    st.integers(0, 10**6),
    st.one_of(st.none(), st.sampled_from(["boom", "timeout"]), st.just(ValueError("bad"))),
)


def record_all(stats: RequestStats, items: list[tuple[Any, ...]]) -> None:
    for item in items:
        stats.record(*item)


def state(merged: MergedStats) -> dict[str, Any]:
    """Everything a merge can change, in comparable form."""
    return {
        "entries": {
            key: (
                e.num_requests,
                e.num_failures,
                e.total_content_length,
                e.histogram.to_wire(),
            )
            for key, e in merged.entries.items()
        },
        "errors": {key: e.occurrences for key, e in merged.errors.items()},
        "exceptions": {key: (x.count, sorted(x.nodes)) for key, x in merged.exceptions.items()},
        "workers": {w: (s.num_requests, s.num_failures) for w, s in merged.per_worker.items()},
        "total": (merged.num_requests, merged.num_failures, merged.total.histogram.to_wire()),
    }


# -- worker side -------------------------------------------------------------------------


def test_record_counts_requests_failures_and_errors() -> None:
    stats = RequestStats(now=0.0)
    stats.record("GET", "/a", 12.5, 100, None)
    stats.record("GET", "/a", 7.25, 50, "boom")
    stats.record("GET", "/a", 3, 0, "boom")
    stats.record("POST", "/a", 1000, 10, ValueError("bad value"))
    stats.log_exception("oops", "Traceback ...")
    delta = stats.take_delta(now=1.0)
    get = delta.entries[("GET", "/a")]
    assert (get.count, get.failures, get.content_length) == (3, 2, 150)
    assert (get.histogram.sum, get.histogram.min, get.histogram.max) == (22_750, 3000, 12_500)
    assert delta.errors == {
        ("GET", "/a", "boom"): 2,
        ("POST", "/a", "ValueError('bad value')"): 1,
    }
    assert delta.exceptions == {("oops", "Traceback ..."): 1}
    assert (delta.start, delta.end, delta.num_requests, delta.num_failures) == (0.0, 1.0, 4, 3)


@given(st.lists(st.one_of(st.floats(-5, 5e6), st.integers(-10, 10**7)), max_size=200))
def test_recorder_counts_exactly_as_histogram_record(times_ms: list[float]) -> None:
    stats = RequestStats(now=0.0)
    expected = Histogram()
    for t in times_ms:
        stats.record("GET", "/", t, 0, None)
        expected.record(int(t * 1000.0 + 0.5))
    delta = stats.take_delta(now=1.0)
    if times_ms:
        assert delta.entries[("GET", "/")].histogram == expected
    # the next interval starts with the buckets this one used, and counts the same
    for t in times_ms:
        stats.record("GET", "/", t, 0, None)
    again = stats.take_delta(now=2.0)
    assert again.entries == delta.entries


@pytest.mark.parametrize("bad", ["abc", None, float("nan"), float("inf"), [1]])
def test_a_bad_response_time_raises_and_records_nothing(bad: Any) -> None:
    stats = RequestStats(now=0.0)
    stats.record("GET", "/", 5.0, 10, None)
    with pytest.raises((TypeError, ValueError, OverflowError)):
        stats.record("GET", "/", bad, 10, "failure")
    delta = StatsDelta.decode(stats.take_delta(now=1.0).encode())
    tally = delta.entries[("GET", "/")]
    assert (tally.count, tally.failures, tally.content_length) == (1, 0, 10)
    assert not delta.errors


def test_odd_input_still_makes_a_delta_the_master_accepts() -> None:
    stats = RequestStats(now=0.0)
    stats.record("GET", None, 5.0, 12.7, "x")  # type: ignore[arg-type]
    stats.record("GET", "/neg", 5.0, -40, None)
    stats.record("GET", "/huge", 1e30, 1 << 70, None)
    stats.record("GET", "/long" * 40_000, 1.0, 0, None)
    stats.log_exception("m" * (2 << 20), "tb")
    delta = StatsDelta.decode(stats.take_delta(now=1.0).encode())
    merged = MergedStats(clock=FakeClock())
    merged.merge("w", delta)
    assert merged.get("None", "GET").num_requests == 1
    assert merged.get("None", "GET").total_content_length == 12
    assert merged.get("/neg", "GET").total_content_length == 0
    assert merged.get("/huge", "GET").max_response_time == MAX_VALUE_US / 1000
    assert merged.errors[("GET", "None", "x")].occurrences == 1
    assert len(next(iter(merged.exceptions.values())).msg) == MAX_TEXT_LENGTH


def test_error_text_is_readable_and_masks_addresses() -> None:
    class Thing:
        pass

    class Broken(Exception):
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert error_text("plain text") == "plain text"
    assert error_text(CatchResponseError("wrong")) == "CatchResponseError('wrong')"
    assert error_text(ValueError(Thing())).endswith("Thing object at 0x....>)")
    assert error_text(Broken()) == "Broken(<unprintable>)"


def test_records_after_take_delta_land_in_the_next_delta_only() -> None:
    stats = RequestStats(now=0.0)
    stats.record("GET", "/", 1, 1, None)
    first = stats.take_delta(now=1.0)
    stats.record("GET", "/", 2, 1, "x")
    stats.log_exception("m", "tb")
    assert first.num_requests == 1 and not first.errors and not first.exceptions
    second = stats.take_delta(now=2.0)
    assert second.num_requests == 1 and second.errors and second.exceptions
    assert (second.start, second.end) == (1.0, 2.0)
    assert stats.take_delta(now=3.0).is_empty


@given(st.lists(st.one_of(requests, st.just("swap")), max_size=120))
def test_swapping_never_loses_or_doubles_a_request(ops: list[Any]) -> None:
    stats = RequestStats(now=0.0)
    deltas: list[StatsDelta] = []
    recorded = 0
    for op in ops:
        if op == "swap":
            deltas.append(stats.take_delta(now=float(len(deltas) + 1)))
        else:
            stats.record(*op)
            recorded += 1
    deltas.append(stats.take_delta(now=float(len(deltas) + 1)))
    assert sum(d.num_requests for d in deltas) == recorded
    assert all(a.end == b.start for a, b in zip(deltas, deltas[1:], strict=False))


# -- wire form -----------------------------------------------------------------------------


@given(st.lists(requests, max_size=80))
def test_encode_decode_is_the_identity(items: list[tuple[Any, ...]]) -> None:
    stats = RequestStats(now=10.0)
    record_all(stats, items)
    stats.log_exception("msg", "tb\nline")
    delta = stats.take_delta(now=11.5)
    back = StatsDelta.decode(delta.encode())
    assert back == delta
    assert back.to_wire() == delta.to_wire()
    assert back.errors == delta.errors and back.exceptions == delta.exceptions
    assert back.entries == delta.entries
    assert StatsDelta.from_wire(msgpack.unpackb(msgpack.packb(delta.to_wire()))) == delta


def sample_delta(seed: int = 1, n: int = 200) -> StatsDelta:
    rng = random.Random(seed)
    stats = RequestStats(now=100.0)
    for _ in range(n):
        stats.record(
            rng.choice(["GET", "POST"]),
            f"/item/{rng.randrange(8)}",
            rng.lognormvariate(3, 1),
            rng.randrange(1000),
            None if rng.random() < 0.9 else rng.choice(["e1", "e2"]),
        )
    stats.log_exception("m", "tb")
    return stats.take_delta(now=101.0)


@given(st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_garbled_or_truncated_bytes_are_rejected(data: st.DataObject) -> None:
    original = sample_delta().encode()
    encoded = bytearray(original)
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(encoded) - 1))
        garbled = bytes(encoded[:cut])
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(encoded) - 1))
            encoded[position] ^= data.draw(st.integers(1, 255))
        garbled = bytes(encoded)
    assume(garbled != original)  # two flips of one byte can cancel out
    with pytest.raises(DeltaError):
        StatsDelta.decode(garbled)


def mutations() -> list[tuple[str, Any]]:
    """(description, function wire -> garbled wire) pairs, each making the delta invalid."""

    def at(path: tuple[int, ...], value: Any) -> Any:
        def apply(wire: list[Any]) -> list[Any]:
            target = wire
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
            return wire

        return apply

    return [
        ("old version", at((0,), 1)),
        ("start after end", at((1,), 1e9)),
        ("nan end", at((2,), math.nan)),
        ("key not a string", at((3, 1), 5)),
        ("negative failures", at((4, 0), -1)),
        ("failures above count", at((4, 0), 10**6)),
        ("negative content", at((4, 1), -5)),
        ("count mismatch", at((4, 2), 10**6)),
        ("zero count", at((4, 2), 0)),
        ("float sum", at((4, 3), 1.5)),
        ("bool in fields", at((4, 3), None)),
        ("min above max", at((4, 4), 10**12)),
        ("size zero", at((5, 0), 0)),
        ("negative bucket count", at((6, 1), -3)),
        ("zero gap", at((6, 0), 0)),
        ("bucket out of range", at((6, 0), 5000)),
        ("truncated buckets", lambda w: [*w[:6], w[6][:-2], *w[7:]]),
        ("missing field", lambda w: w[:-1]),
        ("entries not a list", at((3,), "GET")),
        ("error count negative", at((7, 3), -1)),
        ("error for a missing entry", at((7, 1), "/nowhere")),
        ("errors do not add up", at((7, 3), 10**6)),
        ("exception count zero", at((8, 2), 0)),
        ("exception not text", at((8, 0), b"bytes")),
        ("duplicate entry", lambda w: [*w[:3], w[3][:2] * (len(w[3]) // 2), *w[4:]]),
    ]


@pytest.mark.parametrize(("what", "mutate"), mutations(), ids=[m[0] for m in mutations()])
def test_inconsistent_wire_forms_are_rejected_and_merge_nothing(what: str, mutate: Any) -> None:
    good = sample_delta()
    merged = MergedStats(clock=FakeClock())
    merged.merge("w1", good)
    before = state(merged)
    wire = msgpack.unpackb(msgpack.packb(good.to_wire()))  # a deep copy
    with pytest.raises(DeltaError):
        merged.merge("w2", StatsDelta.from_wire(mutate(wire)))
    assert state(merged) == before


junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=5),
        st.binary(max_size=5),
    ),
    lambda children: st.lists(children, max_size=8),
    max_leaves=40,
)


@given(junk)
def test_any_junk_is_a_delta_error_never_a_crash(obj: Any) -> None:
    try:
        StatsDelta.from_wire(obj)
    except DeltaError:
        pass


@given(st.data())
def test_fields_replaced_by_junk_are_rejected_or_still_consistent(data: st.DataObject) -> None:
    wire = msgpack.unpackb(msgpack.packb(sample_delta(n=30).to_wire()))
    column = data.draw(st.integers(3, 8))
    if wire[column]:
        wire[column][data.draw(st.integers(0, len(wire[column]) - 1))] = data.draw(junk)
    try:
        delta = StatsDelta.from_wire(wire)
    except DeltaError:
        return
    merged = MergedStats(clock=FakeClock())
    merged.merge("w", delta)  # whatever got through merges cleanly
    assert merged.num_requests == delta.num_requests


# -- merging -------------------------------------------------------------------------------


@given(
    st.lists(st.tuples(requests, st.integers(0, 3), st.booleans()), max_size=150),
    st.booleans(),
)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_merging_many_workers_equals_recording_in_one_place(
    plan: list[tuple[tuple[Any, ...], int, bool]], via_wire: bool
) -> None:
    clock = FakeClock()
    workers = {w: RequestStats(now=0.0) for w in range(4)}
    everything = RequestStats(now=0.0)
    merged = MergedStats(clock=clock)
    for item, worker, swap_after in plan:
        workers[worker].record(*item)
        everything.record(*item)
        if swap_after:
            delta = workers[worker].take_delta(now=clock.now)
            if via_wire:
                delta = StatsDelta.decode(delta.encode())
            merged.merge(f"w{worker}", delta)
            clock.now += 0.3
    for worker, stats in workers.items():
        merged.merge(f"w{worker}", stats.take_delta(now=clock.now))
    single = MergedStats(clock=clock)
    single.merge("one", everything.take_delta(now=clock.now))

    mine, theirs = state(merged), state(single)
    assert mine["entries"] == theirs["entries"]
    assert mine["errors"] == theirs["errors"]
    assert mine["total"] == theirs["total"]
    assert sum(n for n, _ in mine["workers"].values()) == single.num_requests
    for key, entry in merged.entries.items():
        other = single.entries[key]
        h, g = entry.histogram, other.histogram
        assert (h.count, h.sum, h.min, h.max) == (g.count, g.sum, g.min, g.max)
        assert list(h.buckets()) == list(g.buckets())


def test_locust_compatible_entry_attributes() -> None:
    clock = FakeClock(1000.0)
    merged = MergedStats(clock=clock)
    stats = RequestStats(now=999.0)
    times = [10.0, 20.0, 30.0, 40.0, 1000.0]
    for i, t in enumerate(times):
        stats.record("GET", "/x", t, 100 * (i + 1), "fail" if i == 4 else None)
    stats.record("POST", "/y", 5.0, 0, None)
    merged.merge("w1", stats.take_delta(now=1000.5))

    entry = merged.get("/x", "GET")
    assert merged.entries[("/x", "GET")] is entry
    assert (entry.name, entry.method) == ("/x", "GET")
    assert entry.num_requests == 5 and entry.num_failures == 1
    assert entry.fail_ratio == pytest.approx(0.2)
    assert entry.total_response_time == pytest.approx(1100.0)
    assert entry.avg_response_time == pytest.approx(220.0)
    assert entry.min_response_time == pytest.approx(10.0)
    assert entry.max_response_time == pytest.approx(1000.0)
    assert entry.median_response_time == pytest.approx(30.0, rel=0.01)
    assert entry.get_response_time_percentile(1.0) == pytest.approx(1000.0)
    assert entry.get_response_time_percentile(0.8) == pytest.approx(40.0, rel=0.01)
    assert entry.avg_content_length == pytest.approx(300.0)
    assert entry.total_content_length == 1500
    assert entry.num_none_requests == 0
    assert entry.start_time == 999.0 and entry.last_request_timestamp == 1000.5

    total = merged.total
    assert (total.name, total.method) == ("Aggregated", "")
    assert total.num_requests == merged.num_requests == 6
    assert total.num_failures == merged.num_failures == 1
    assert total.max_response_time == pytest.approx(1000.0)
    assert total.min_response_time == pytest.approx(5.0)
    assert merged.errors[("GET", "/x", "fail")].occurrences == 1
    assert merged.errors[("GET", "/x", "fail")].to_name() == "GET /x: fail"
    assert merged.start_time == 999.0
    assert merged.last_request_timestamp == 1000.5
    assert merged.per_worker["w1"].num_requests == 6
    assert merged.per_worker["w1"].num_failures == 1
    assert total.total_rps == pytest.approx(6 / 1.5)
    assert total.total_fail_per_sec == pytest.approx(1 / 1.5)

    # the aggregated figures follow later merges
    more = RequestStats(now=1000.5)
    more.record("GET", "/x", 5000.0, 0, None)
    merged.merge("w2", more.take_delta(now=1001.0))
    assert merged.total.max_response_time == pytest.approx(5000.0)
    assert merged.total.num_requests == 7


def test_empty_entry_and_stats_have_locust_defaults() -> None:
    merged = MergedStats(clock=FakeClock())
    entry = merged.get("/none", "GET")
    assert entry.num_requests == 0 and entry.fail_ratio == 0.0
    assert entry.min_response_time is None and entry.max_response_time == 0
    assert entry.avg_response_time == 0.0 and entry.median_response_time == 0
    assert entry.current_rps == 0.0 and entry.total_rps == 0.0
    assert entry.get_current_response_time_percentile(0.95) == 0
    assert merged.total.num_requests == 0 and merged.last_request_timestamp is None


def test_current_rps_averages_the_last_complete_seconds() -> None:
    clock = FakeClock(100.0)
    merged = MergedStats(window=10, clock=clock)
    workers = [RequestStats(now=99.0) for _ in range(2)]
    for second in range(100, 130):
        for w, stats in enumerate(workers):
            for _ in range(10 * (w + 1)):  # 10 + 20 requests a second
                stats.record("GET", "/", 1.0, 0, None if second < 115 else "x")
            clock.now = second + 0.2 + 0.3 * w
            merged.merge(f"w{w}", stats.take_delta(now=clock.now))
    entry = merged.get("/", "GET")
    assert entry.current_rps == pytest.approx(30.0)
    assert merged.total.current_rps == pytest.approx(30.0)
    assert entry.current_fail_per_sec == pytest.approx(30.0)
    early = MergedStats(clock=FakeClock(50.0))
    stats = RequestStats(now=49.0)
    stats.record("GET", "/", 1.0, 0, None)
    early.merge("w", stats.take_delta(now=50.5))
    assert early.total.current_rps == 0.0  # no complete second yet


def test_current_percentiles_cover_the_window_only() -> None:
    clock = FakeClock(1000.0)
    merged = MergedStats(window=10, clock=clock)
    stats = RequestStats(now=999.0)
    for second in range(1000, 1040):
        for _ in range(20):
            stats.record("GET", "/", 2000.0 if second < 1020 else 10.0, 0, None)
        clock.now = second + 0.5
        merged.merge("w", stats.take_delta(now=clock.now))
    entry = merged.get("/", "GET")
    assert entry.get_response_time_percentile(0.75) == pytest.approx(2000.0, rel=0.01)
    assert entry.get_current_response_time_percentile(0.5) == pytest.approx(10.0, rel=0.01)
    assert entry.get_current_response_time_percentile(1.0) == pytest.approx(10.0, rel=0.01)
    assert merged.total.get_current_response_time_percentile(0.95) == pytest.approx(10.0, rel=0.01)
    window = entry.current_histogram()
    assert 180 <= window.count <= 240  # about ten seconds of 20 requests
    # snapshots are bounded by the window, not by the length of the test
    assert len(merged._snapshots) <= 13


def test_current_percentile_before_a_full_window_uses_everything() -> None:
    clock = FakeClock(1000.0)
    merged = MergedStats(window=10, clock=clock)
    stats = RequestStats(now=999.0)
    stats.record("GET", "/", 50.0, 0, None)
    merged.merge("w", stats.take_delta(now=1000.0))
    clock.now = 1003.0
    assert merged.get("/", "GET").get_current_response_time_percentile(0.5) == pytest.approx(50.0)


def test_exceptions_and_errors_merge_across_workers() -> None:
    merged = MergedStats(clock=FakeClock())
    for worker in ("a", "b"):
        stats = RequestStats(now=0.0)
        stats.record("GET", "/", 1.0, 0, CatchResponseError("wrong body"))
        stats.log_exception("ZeroDivisionError: x", "Traceback: line 1")
        merged.merge(worker, StatsDelta.decode(stats.take_delta(now=1.0).encode()))
    (error,) = merged.errors.values()
    assert (error.method, error.name, error.occurrences) == ("GET", "/", 2)
    assert error.error == "CatchResponseError('wrong body')"
    assert error.to_name() == "GET /: 'wrong body'"
    (record,) = merged.exceptions.values()
    assert record.count == 2 and record.nodes == {"a", "b"}
    assert record["count"] == 2 and record["msg"] == "ZeroDivisionError: x"
    assert record.traceback == "Traceback: line 1"


def test_reset_forgets_everything() -> None:
    clock = FakeClock()
    merged = MergedStats(clock=clock)
    merged.merge("w", sample_delta())
    assert merged.num_requests and merged.errors and merged.exceptions
    clock.now = 2000.0
    merged.reset()
    assert not merged.entries and not merged.errors and not merged.exceptions
    assert not merged.per_worker
    assert merged.num_requests == 0 and merged.total.num_requests == 0
    assert merged.total.histogram.count == 0
    assert merged.start_time == 2000.0


def test_debug_runner_path_merges_worker_side_deltas_directly() -> None:
    recorder = RequestStats(now=0.0)
    merged = MergedStats(clock=FakeClock())
    data = [float(i) for i in range(1, 101)]
    for t in data:
        recorder.record("GET", "/", t, 1, None)
    merged.merge("local", recorder.take_delta(now=1.0))
    entry = merged.get("/", "GET")
    for p in PERCENTILES:
        exact = sorted(data)[quantile_rank(p, len(data)) - 1]
        assert entry.get_response_time_percentile(p) == pytest.approx(exact, rel=0.01)
    assert entry.get_response_time_percentiles() == [
        entry.get_response_time_percentile(p) for p in PERCENTILES
    ]


def test_percentiles_stay_within_one_percent_after_many_merges() -> None:
    rng = random.Random(3)
    merged = MergedStats(clock=FakeClock())
    data: list[float] = []
    for worker in range(5):
        stats = RequestStats(now=0.0)
        for _ in range(2000):
            t = rng.lognormvariate(4, 1.2)
            data.append(int(t * 1000 + 0.5) / 1000)
            stats.record("GET", "/", t, 0, None)
        merged.merge(f"w{worker}", StatsDelta.decode(stats.take_delta(now=1.0).encode()))
    for p in PERCENTILES:
        exact = sorted(data)[quantile_rank(p, len(data)) - 1]
        assert merged.total.get_response_time_percentile(p) == pytest.approx(exact, rel=0.01)


def test_histogram_of_a_decoded_delta_is_usable() -> None:
    delta = StatsDelta.decode(sample_delta().encode())
    tally = next(iter(delta.entries.values()))
    assert isinstance(tally.histogram, Histogram)
    assert tally.histogram.quantile(0.5) > 0
