"""The log-linear histogram: bucket layout, quantile error bound, merge, wire form."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcore.histogram import (
    MAX_TRACKABLE_US,
    N_BUCKETS,
    Histogram,
    HistogramError,
    bucket_bounds,
    bucket_index,
    quantile_rank,
)
from lcore.stats import PERCENTILES

# Response times spread over many octaves: exponent first, so small and huge values both occur.
log_values = st.builds(
    lambda exponent, fraction: int(2 ** (exponent + fraction)),
    st.integers(0, 31),
    st.floats(0, 1, exclude_max=True),
)
values = st.one_of(st.integers(0, 300), log_values, st.integers(0, MAX_TRACKABLE_US))
samples = st.lists(values, min_size=1, max_size=400)
quantiles = st.one_of(st.sampled_from((0.0, *PERCENTILES)), st.floats(0, 1))


def build(data: list[int]) -> Histogram:
    h = Histogram()
    for v in data:
        h.record(v)
    return h


def exact_quantile(data: list[int], q: float) -> int:
    return sorted(data)[quantile_rank(q, len(data)) - 1]


@given(st.integers(0, MAX_TRACKABLE_US))
def test_every_value_lies_in_its_bucket_and_buckets_are_narrow(value: int) -> None:
    index = bucket_index(value)
    low, high = bucket_bounds(index)
    assert low <= value <= high
    assert high - low + 1 <= max(1, low // 64)


def test_buckets_tile_the_range_without_gaps() -> None:
    previous_high = -1
    for index in range(N_BUCKETS):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        assert bucket_index(low) == index == bucket_index(high)
        previous_high = high
    assert previous_high == MAX_TRACKABLE_US
    assert 3600 * 1_000_000 < MAX_TRACKABLE_US  # at least an hour
    with pytest.raises(IndexError):
        bucket_bounds(N_BUCKETS)


def test_quantile_rank_is_nearest_rank_without_float_noise() -> None:
    assert quantile_rank(0.95, 100) == 95
    assert quantile_rank(0.5, 3) == 2
    assert quantile_rank(0.0, 10) == 1
    assert quantile_rank(1.0, 10) == 10
    assert quantile_rank(0.999, 1000) == 999


@given(samples, quantiles)
@settings(max_examples=300)
def test_every_quantile_is_within_one_percent(data: list[int], q: float) -> None:
    h = build(data)
    exact = exact_quantile(data, q)
    reported = h.quantile(q)
    assert abs(reported - exact) <= exact / 128  # the documented bound, below 1 %
    assert h.min <= reported <= h.max


@given(samples)
def test_quantiles_in_one_pass_match_single_ones(data: list[int]) -> None:
    h = build(data)
    assert h.quantiles(PERCENTILES) == [h.quantile(q) for q in PERCENTILES]
    assert h.quantile(0) == min(data)
    assert h.quantile(1) == max(data)


@given(st.lists(samples, min_size=1, max_size=6))
def test_merging_parts_equals_recording_everything_in_one_place(parts: list[list[int]]) -> None:
    merged_dense, merged_sparse = Histogram(), Histogram()
    for part in parts:
        h = build(part)
        merged_dense.merge(h)
        merged_sparse.merge(Histogram.from_wire(h.to_wire()))
    everything = [v for part in parts for v in part]
    whole = build(everything)
    for merged in (merged_dense, merged_sparse):
        assert merged == whole
        assert (merged.count, merged.sum, merged.min, merged.max) == (
            len(everything),
            sum(everything),
            min(everything),
            max(everything),
        )
        assert list(merged.buckets()) == list(whole.buckets())


@given(samples)
def test_wire_round_trip_is_the_identity(data: list[int]) -> None:
    h = build(data)
    back = Histogram.from_wire(h.to_wire())
    assert back == h
    assert back.to_wire() == h.to_wire()
    assert back.quantiles(PERCENTILES) == h.quantiles(PERCENTILES)
    back.record(5)  # a decoded histogram can still record
    h.record(5)
    assert back == h


def test_empty_histogram() -> None:
    h = Histogram()
    assert (h.count, h.sum, h.min, h.max, h.quantile(0.5)) == (0, 0, 0, 0, 0)
    assert h.to_wire() == [0, 0, 0, 0]
    assert h.wire_pairs() == [] and list(h.buckets()) == [] and h.span() is None
    assert Histogram.from_wire([0, 0, 0, 0]) == h
    assert not h


def test_negative_values_count_as_zero_and_huge_ones_land_in_the_top_bucket() -> None:
    h = Histogram()
    h.record(-5)
    h.record(10 * MAX_TRACKABLE_US)
    assert h.min == 0 and h.max == 10 * MAX_TRACKABLE_US
    assert h.sum == 10 * MAX_TRACKABLE_US
    assert [index for index, _ in h._nonzero()] == [0, N_BUCKETS - 1]
    assert h.quantile(1.0) == 10 * MAX_TRACKABLE_US


@pytest.mark.parametrize(
    "wire",
    [
        [1, 5, 5, 5],  # counts without buckets
        [1, 5, 5, 5, 6, -1],  # negative count
        [1, 5, 5, 5, 0, 1],  # gap 0
        [2, 10, 5, 5, 6, 1],  # counts do not add up
        [1, 5, 5, 5, 6, 1, 3],  # odd length
        [1, 5, 5, 5, N_BUCKETS + 1, 1],  # index out of range
        [1, 5.0, 5, 5, 6, 1],  # float
        [1, 5, 5, 5, "6", 1],  # string
        [1, 5, 7, 5, 6, 1],  # min above max
        [1, 9, 5, 5, 6, 1],  # sum out of range
        [1, 5, 9, 9, 6, 1],  # min/max not in the bucket
        [-1, 0, 0, 0],
        "not a list",
        None,
    ],
)
def test_bad_wire_forms_are_rejected(wire: object) -> None:
    with pytest.raises(HistogramError):
        Histogram.from_wire(wire)
    assert issubclass(HistogramError, ValueError)


@given(samples, samples)
def test_subtracting_a_snapshot_leaves_what_came_since(before: list[int], after: list[int]) -> None:
    cumulative = build(before)
    snapshot = cumulative.compact_copy()
    for v in after:
        cumulative.record(v)
    window = cumulative.copy()
    window.subtract(snapshot)
    later = build(after)
    assert (window.count, window.sum) == (later.count, later.sum)
    assert list(window._nonzero()) == list(later._nonzero())
    assert abs(window.min - later.min) <= later.min / 128
    assert abs(window.max - later.max) <= later.max / 128
    # quantiles stay within the bucket bound of the exact ones
    for q in PERCENTILES:
        exact = exact_quantile(after, q)
        assert abs(window.quantile(q) - exact) <= max(exact / 64, 1)


def test_subtract_refuses_what_is_not_a_snapshot_and_changes_nothing() -> None:
    h = build([100, 200, 300])
    other = build([100, 5000])
    before = h.to_wire()
    with pytest.raises(ValueError, match="snapshot"):
        h.subtract(other)
    assert h.to_wire() == before
    h.subtract(h.copy())
    assert h == Histogram()


def test_copy_is_independent_and_reset_empties() -> None:
    h = build([1, 2, 3000])
    c = h.copy()
    h.record(7)
    assert c.count == 3 and h.count == 4
    assert c != h
    h.reset()
    assert h == Histogram()


def test_count_at_or_below_for_cumulative_export() -> None:
    h = build([1, 2, 3, 100, 1000, 1_000_000])
    assert h.count_at_or_below([0, 2, 99, 100, 10_000, MAX_TRACKABLE_US]) == [0, 2, 3, 4, 5, 6]


def test_typical_histogram_takes_a_few_kib() -> None:
    rng = random.Random(7)
    data = [int(rng.lognormvariate(10.8, 0.7)) for _ in range(20_000)]  # ~50 ms, 5 ms - 1 s
    tracemalloc.start()
    try:
        h = build(data)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert h.count == len(data)
    assert used < 12 * 1024  # the list of counts plus the count objects above 256
