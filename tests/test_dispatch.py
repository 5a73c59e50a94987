"""Tests for lcore.dispatch: exact class totals, balanced assignment, paced ramps."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lcore.dispatch import Dispatcher, Ramp, UserClassSpec, class_totals


def specs(*args: tuple[str, int] | tuple[str, int, int]) -> list[UserClassSpec]:
    return [UserClassSpec(*a) for a in args]


# -- class_totals ---------------------------------------------------------------------------------


def locust_deal(classes: list[UserClassSpec], users: int) -> dict[str, int]:
    """Locust's dealing written independently: repeatedly give the next user to the class
    (by name) whose count grows its weight's KL term least, fixed classes first."""

    def deal(pool: list[tuple[str, int]], n: int) -> dict[str, int]:
        counts = {name: 0 for name, _ in pool}
        for _ in range(n):
            live = [(w * math.log2((w + counts[name]) / (w + counts[name] + 1.0)), w + counts[name] + 1.0, w, name)
                    for name, w in pool if w > 0]
            if not live:
                break
            counts[min(live)[3]] += 1
        return counts

    out = {c.name: 0 for c in classes}
    fixed = sorted((c.name, c.fixed_count) for c in classes if c.fixed_count)
    total_fixed = sum(n for _, n in fixed)
    out.update(deal(fixed, min(users, total_fixed)))
    weighted = sorted((c.name, c.weight) for c in classes if not c.fixed_count and c.weight)
    for name, n in deal(weighted, max(0, users - total_fixed)).items():
        out[name] += n
    return out


@pytest.mark.parametrize(
    ("classes", "users", "expected"),
    [
        # Locust's dealing: 3 users of weights 3:1:1 are one of each
        (specs(("A", 3), ("B", 1), ("C", 1)), 3, {"A": 1, "B": 1, "C": 1}),
        (specs(("A", 3), ("B", 1)), 10, {"A": 7, "B": 3}),
        (specs(("B", 1), ("A", 3)), 10, {"B": 3, "A": 7}),
        (specs(("A", 1), ("B", 1), ("C", 1)), 2, {"A": 1, "B": 1, "C": 0}),
        # classes are dealt by name, whatever order they are declared in
        (specs(("C", 1), ("B", 1), ("A", 1)), 2, {"C": 0, "B": 1, "A": 1}),
        (specs(("Admin", 1, 1), ("A", 1), ("B", 1)), 5, {"Admin": 1, "A": 2, "B": 2}),
        (specs(("A", 1), ("Admin", 1, 1), ("B", 1)), 1, {"A": 0, "Admin": 1, "B": 0}),
        # Fixed classes first, dealt among themselves by their fixed counts
        (specs(("F1", 1, 3), ("F2", 1, 2), ("W", 1)), 4, {"F1": 2, "F2": 2, "W": 0}),
        (specs(("F1", 1, 3), ("F2", 1, 2), ("W", 1)), 9, {"F1": 3, "F2": 2, "W": 4}),
        # Every class fixed: the total is capped.
        (specs(("F1", 1, 2), ("F2", 1, 1)), 10, {"F1": 2, "F2": 1}),
        (specs(("Zero", 0), ("B", 1)), 5, {"Zero": 0, "B": 5}),
        (specs(("Zero", 0), ("B", 2), ("C", 1)), 1000, {"Zero": 0, "B": 667, "C": 333}),
        (specs(("A", 3), ("B", 1)), 0, {"A": 0, "B": 0}),
    ],
)
def test_class_totals_examples(classes, users, expected):
    assert class_totals(classes, users) == expected


def test_class_totals_never_shrink_as_the_count_grows():
    classes = specs(("A", 1), ("B", 3), ("C", 3))
    previous = class_totals(classes, 0)
    for users in range(1, 300):
        totals = class_totals(classes, users)
        assert all(totals[n] >= previous[n] for n in totals)
        previous = totals


@pytest.mark.parametrize(
    "classes",
    [
        [],
        specs(("A", 0), ("B", 0)),
        specs(("A", 1), ("A", 2)),
    ],
)
def test_class_totals_rejects_unusable_classes(classes):
    with pytest.raises(ValueError):
        class_totals(classes, 1)
    with pytest.raises(ValueError):
        Dispatcher(classes)


def test_bad_specs_and_counts():
    with pytest.raises(ValueError, match="weight"):
        UserClassSpec("A", weight=-1)
    with pytest.raises(ValueError, match="fixed_count"):
        UserClassSpec("A", fixed_count=-2)
    with pytest.raises(ValueError, match="weight"):
        UserClassSpec("A", weight=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 0"):
        class_totals(specs(("A", 1)), -1)
    with pytest.raises(ValueError, match=">= 0"):
        Dispatcher(specs(("A", 1))).step_to(-1)


def test_spec_of_user_class():
    class Admin:
        weight = 5
        fixed_count = 1

    class Plain:
        pass

    assert UserClassSpec.of(Admin) == UserClassSpec("Admin", 5, 1)
    assert UserClassSpec.of(Plain) == UserClassSpec("Plain", 1, 0)


class_lists = st.lists(
    st.tuples(st.integers(0, 6), st.one_of(st.just(0), st.just(0), st.integers(0, 6))),
    min_size=1,
    max_size=6,
).map(lambda ts: [UserClassSpec(f"C{i}", w, f) for i, (w, f) in enumerate(ts)])


def usable(classes: list[UserClassSpec]) -> bool:
    return any(c.fixed_count or c.weight for c in classes)


@given(classes=class_lists, users=st.integers(0, 600))
def test_class_totals_deal_as_locust_does(classes, users):
    assume(usable(classes))
    totals = class_totals(classes, users)
    assert totals == locust_deal(classes, users)
    assert list(totals) == [c.name for c in classes]
    fixed = [c for c in classes if c.fixed_count]
    weighted = [c for c in classes if not c.fixed_count and c.weight]
    if weighted:
        assert sum(totals.values()) == users
    else:
        assert sum(totals.values()) == min(users, sum(c.fixed_count for c in fixed))
    for c in classes:
        if not c.fixed_count and not c.weight:
            assert totals[c.name] == 0
    # Locust's deal keeps neither the quota rule nor one user per class: see the examples below


@pytest.mark.parametrize(
    ("weights", "users", "expected"),
    [([1, 1, 1, 5], 5, [1, 1, 1, 2]), ([1, 1, 1, 4], 4, [1, 1, 0, 2])],
)
def test_the_deal_matches_locust_where_it_breaks_the_quota(weights, users, expected) -> None:
    # measured with Locust 2.47's UsersDispatcher, one worker
    classes = [UserClassSpec(f"C{i}", w, 0) for i, w in enumerate(weights)]
    assert list(class_totals(classes, users).values()) == expected


# -- Dispatcher invariants ------------------------------------------------------------------------


def check(d: Dispatcher, classes: list[UserClassSpec]) -> None:
    """Everything that must hold after any call."""
    a = d.assignment
    assert list(a) == list(d.workers)
    if not a:
        assert d.user_count == 0
        return
    expected = class_totals(classes, d.requested)
    assert d.class_counts == expected
    assert d.user_count == sum(expected.values())
    for name, total in expected.items():
        per_worker = [a[w][name] for w in a]
        assert min(per_worker) >= 0
        assert sum(per_worker) == total
        assert max(per_worker) - min(per_worker) <= 1, (name, per_worker)
    # Always achievable: lay the users out class by class, round robin over the workers.
    totals = [sum(c.values()) for c in a.values()]
    assert max(totals) - min(totals) <= 1, totals
    for w in a:
        assert d.worker_target(w) == a[w]


def diff(before: dict, after: dict, names: list[str]) -> tuple[set[str], int]:
    """Ids whose counts changed (among current workers), and users started + stopped."""
    zero = dict.fromkeys(names, 0)
    changed = {w for w in after if after[w] != before.get(w, zero)}
    churn = sum(abs(after[w][n] - before.get(w, zero)[n]) for w in after for n in names)
    churn += sum(sum(before[w].values()) for w in before if w not in after)
    return changed, churn


POOL = [f"w{i}" for i in range(7)]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("step"), st.integers(0, 120)),
        st.tuples(st.just("nudge"), st.integers(-4, 4)),
        st.tuples(st.just("workers"), st.permutations(POOL).flatmap(lambda p: st.just(p[:3]))),
        st.tuples(st.just("workers"), st.lists(st.sampled_from(POOL), max_size=7)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(classes=class_lists, initial=st.lists(st.sampled_from(POOL), max_size=7), steps=ops)
def test_dispatcher_invariants(classes, initial, steps):
    assume(usable(classes))
    names = [c.name for c in classes]
    d = Dispatcher(classes)
    d.set_workers(initial)
    check(d, classes)
    for kind, arg in steps:
        before = {w: dict(c) for w, c in d.assignment.items()}
        old_totals = d.class_counts
        if kind == "workers":
            changed = d.set_workers(arg)
            assert set(d.workers) == set(arg)
        else:
            users = arg if kind == "step" else max(0, d.requested + arg)
            changed = d.step_to(users)
            assert d.requested == users
        check(d, classes)
        after = {w: dict(c) for w, c in d.assignment.items()}
        really_changed, churn = diff(before, after, names)
        assert changed == really_changed
        if kind != "workers" and before:
            # Each user added or removed costs at most one extra move (two more changes).
            moved = sum(abs(d.class_counts[n] - old_totals[n]) for n in names)
            assert churn <= 3 * moved


def fewest_moves(before: dict, workers: list[str], totals: dict[str, int]) -> int:
    """Brute force: the least churn of any balanced assignment of ``totals`` to ``workers``."""
    n = len(workers)
    names = list(totals)
    zero = dict.fromkeys(names, 0)
    gone = sum(sum(before[w].values()) for w in before if w not in workers)
    have = [[before.get(w, zero)[c] for c in names] for w in workers]
    best = None
    for pick in itertools.product(
        *[itertools.combinations(range(n), totals[c] % n) for c in names]
    ):
        rows = [[totals[c] // n + (i in pick[j]) for j, c in enumerate(names)] for i in range(n)]
        sums = [sum(r) for r in rows]
        if max(sums) - min(sums) > 1:
            continue
        churn = sum(
            abs(x - y) for r, h in zip(rows, have, strict=True) for x, y in zip(r, h, strict=True)
        )
        best = churn if best is None else min(best, churn)
    assert best is not None
    return best + gone


@settings(max_examples=150, deadline=None)
@given(
    classes=class_lists.filter(lambda cs: len(cs) <= 4),
    history=st.lists(st.integers(0, 40), max_size=3),
    users=st.integers(0, 40),
    n_before=st.integers(1, 4),
    n_after=st.integers(1, 4),
    keep_first=st.booleans(),
)
def test_rebalance_moves_fewest_users(classes, history, users, n_before, n_after, keep_first):
    assume(usable(classes))
    names = [c.name for c in classes]
    d = Dispatcher(classes)
    d.set_workers(POOL[:n_before])
    for n in [*history, users]:
        d.step_to(n)
    before = {w: dict(c) for w, c in d.assignment.items()}
    # Grow or shrink the set, either at the end or by swapping out the first worker.
    workers = POOL[:n_after] if keep_first else POOL[1 : n_after + 1]
    d.set_workers(workers)
    check(d, classes)
    _, churn = diff(before, d.assignment, names)
    assert churn == fewest_moves(before, workers, d.class_counts)
    if keep_first:
        for w in set(before) & set(workers):
            old, new = sum(before[w].values()), sum(d.worker_target(w).values())
            assert new <= old if n_after > n_before else new >= old


@settings(max_examples=150, deadline=None)
@given(
    classes=class_lists.filter(lambda cs: len(cs) <= 4),
    history=st.lists(st.integers(0, 60), max_size=4),
    step=st.integers(-60, 60).filter(lambda s: abs(s) > 12),
    n=st.integers(1, 4),
)
def test_big_steps_move_fewest_users(classes, history, step, n):
    """Steps of more than a few users are planned as a whole: no needless moves."""
    assume(usable(classes))
    names = [c.name for c in classes]
    d = Dispatcher(classes)
    d.set_workers(POOL[:n])
    for users in history:
        d.step_to(users)
    assume(d.requested + step >= 0)
    before = {w: dict(c) for w, c in d.assignment.items()}
    d.step_to(d.requested + step)
    check(d, classes)
    _, churn = diff(before, d.assignment, names)
    assert churn == fewest_moves(before, POOL[:n], d.class_counts)


@given(classes=class_lists, users=st.integers(0, 300), n=st.integers(1, 7))
def test_same_workers_again_changes_nothing(classes, users, n):
    assume(usable(classes))
    d = Dispatcher(classes)
    d.set_workers(POOL[:n])
    d.step_to(users)
    before = d.assignment
    assert d.set_workers(reversed(POOL[:n])) == set()
    assert d.assignment == before
    assert d.step_to(users) == set()


# -- Dispatcher examples --------------------------------------------------------------------------


def test_one_class_alternates_over_two_workers():
    d = Dispatcher(specs(("A", 1)))
    assert d.set_workers(["w1", "w2"]) == set()
    got = [d.step_to(n) for n in range(1, 6)]
    assert got == [{"w1"}, {"w2"}, {"w1"}, {"w2"}, {"w1"}]
    assert d.assignment == {"w1": {"A": 3}, "w2": {"A": 2}}
    # Ramping down retraces the way up.
    got = [d.step_to(n) for n in range(4, -1, -1)]
    assert got == [{"w1"}, {"w2"}, {"w1"}, {"w2"}, {"w1"}]
    assert d.user_count == 0


def test_new_users_go_to_each_worker_in_turn():
    d = Dispatcher(specs(("A", 1)))
    workers = [f"w{i}" for i in range(10)]
    d.set_workers(workers)
    assert [d.step_to(n) for n in range(1, 11)] == [{w} for w in workers]


def test_classes_spread_evenly():
    d = Dispatcher(specs(("A", 3), ("B", 1)))
    d.set_workers(["w1", "w2", "w3"])
    d.step_to(10)  # A 7, B 3 (Locust's dealing)
    a = d.assignment
    assert sorted(a[w]["A"] for w in a) == [2, 2, 3]
    assert sorted(a[w]["B"] for w in a) == [1, 1, 1]
    assert sorted(sum(a[w].values()) for w in a) == [3, 3, 4]


def test_fixed_count_user_lands_on_one_worker():
    d = Dispatcher(specs(("Admin", 1, 1), ("Web", 1)))
    d.set_workers(["w1", "w2", "w3", "w4"])
    d.step_to(9)
    a = d.assignment
    assert sum(a[w]["Admin"] for w in a) == 1
    assert sorted(sum(a[w].values()) for w in a) == [2, 2, 2, 3]


def test_all_fixed_caps_the_user_count():
    classes = specs(("F1", 1, 2), ("F2", 1, 1))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2"])
    d.step_to(10)
    assert d.requested == 10
    assert d.user_count == 3
    check(d, classes)


def test_one_more_user_never_takes_one_from_a_class():
    classes = specs(("A", 1), ("B", 3), ("C", 3))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2"])
    d.step_to(3)
    assert d.class_counts == {"A": 1, "B": 1, "C": 1}
    d.step_to(4)
    assert d.class_counts == {"A": 1, "B": 2, "C": 1}
    check(d, classes)


def test_users_requested_before_any_worker_are_placed_when_workers_join():
    classes = specs(("A", 1), ("B", 1))
    d = Dispatcher(classes)
    assert d.step_to(10) == set()
    assert d.user_count == 0
    assert d.requested == 10
    assert d.set_workers(["w1", "w2", "w3"]) == {"w1", "w2", "w3"}
    check(d, classes)
    assert d.user_count == 10
    # All gone, then one back: it gets everything.
    assert d.set_workers([]) == set()
    assert d.assignment == {}
    assert d.user_count == 0
    assert d.set_workers(["w9"]) == {"w9"}
    assert d.worker_target("w9") == {"A": 5, "B": 5}


def test_join_moves_as_few_users_as_possible():
    d = Dispatcher(specs(("A", 1)))
    d.set_workers(["w1", "w2", "w3"])
    d.step_to(30)
    changed = d.set_workers(["w1", "w2", "w3", "w4"])
    a = d.assignment
    # 30 over 4 is 8, 8, 7, 7: the newcomer takes 7, the least that balance allows.
    assert a["w4"] == {"A": 7}
    assert sorted(a[w]["A"] for w in ("w1", "w2", "w3")) == [7, 8, 8]
    assert changed == {"w1", "w2", "w3", "w4"}
    # Leaving: only the remaining workers change, and only upwards.
    changed = d.set_workers(["w1", "w3", "w4"])
    assert changed == {"w1", "w3", "w4"}
    assert all(d.worker_target(w) == {"A": 10} for w in ("w1", "w3", "w4"))


def test_worker_target_lists_every_class():
    d = Dispatcher(specs(("A", 1), ("B", 0)))
    d.set_workers(["w1"])
    d.step_to(2)
    assert d.worker_target("w1") == {"A": 2, "B": 0}
    with pytest.raises(KeyError):
        d.worker_target("nope")


def test_big_steps_many_workers():
    # The timing is reported by hand; this checks the bulk path keeps the invariants.
    classes = specs(("A", 5), ("B", 3), ("C", 1), ("Admin", 1, 2))
    d = Dispatcher(classes)
    d.set_workers([f"w{i}" for i in range(100)])
    assert len(d.step_to(100_000)) == 100
    check(d, classes)
    d.set_workers([f"w{i}" for i in range(1, 101)])  # one leaves, one joins
    check(d, classes)
    for n in range(100_000, 90_000, -997):
        d.step_to(n)
        check(d, classes)
    # Doubling the workers: rebalancing must not go quadratic in the worker count.
    d.set_workers([f"w{i}" for i in range(500)])
    d.step_to(77_777)
    d.set_workers([f"w{i}" for i in range(1000)])
    check(d, classes)


# -- Ramp -----------------------------------------------------------------------------------------


def drive(ramp: Ramp, start: float, tick: float = 0.1) -> list[tuple[float, set[str]]]:
    """Loop like the master: advance, then sleep until the next user or the next tick."""
    now = start
    log = []
    for _ in range(100_000):
        changed = ramp.advance(now)
        if changed:
            log.append((now, changed))
        due = ramp.next_due()
        if due is None:
            return log
        assert due > now, "next_due must lie ahead after advance"
        now = min(due, now + tick)
    raise AssertionError("ramp never finished")


def test_rate_one_two_workers_one_user_a_second_alternating():
    d = Dispatcher(specs(("A", 1)))
    d.set_workers(["w1", "w2"])
    ramp = Ramp(d, target=4, spawn_rate=1, now=100.0)
    assert ramp.next_due() == 100.0  # the first at once, as Locust's first batch
    assert ramp.advance(99.99) == set()
    log = drive(ramp, 100.0, tick=0.25)
    assert log == [(100.0, {"w1"}), (101.0, {"w2"}), (102.0, {"w1"}), (103.0, {"w2"})]
    assert ramp.done
    assert ramp.next_due() is None
    assert d.assignment == {"w1": {"A": 2}, "w2": {"A": 2}}


def test_rate_below_worker_count_never_bursts():
    classes = specs(("A", 2), ("B", 1), ("C", 1))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2", "w3", "w4", "w5"])
    ramp = Ramp(d, target=12, spawn_rate=1, now=0.0)
    now = 0.0
    while not ramp.done:
        count = d.user_count
        changed = ramp.advance(now)
        # At most one user a second, started where it is due (the first at once).
        assert d.user_count == min(12, math.floor(now + 1e-9) + 1)
        if d.user_count > count:
            assert d.user_count == count + 1
            assert changed
        check(d, classes)
        now += 0.25
    assert now == pytest.approx(11.25)


def test_rate_half():
    d = Dispatcher(specs(("A", 1)))
    d.set_workers(["w1", "w2"])
    ramp = Ramp(d, target=3, spawn_rate=0.5, now=0.0)
    assert [t for t, _ in drive(ramp, 0.0)] == [0.0, 2.0, 4.0]


def test_rate_100_reaches_1000_at_ten_seconds():
    classes = specs(("A", 3), ("B", 1))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2", "w3", "w4"])
    ramp = Ramp(d, target=1000, spawn_rate=100, now=0.0)
    ramp.advance(9.989)
    assert d.user_count == 999
    assert not ramp.done
    assert ramp.next_due() == pytest.approx(9.99)
    ramp.advance(9.99)
    assert d.user_count == 1000
    assert ramp.done
    check(d, classes)


@pytest.mark.parametrize("t0", [0.0, 0.1, 12345.678, 1e6 + 0.3])
def test_master_loop_counts_on_schedule(t0):
    classes = specs(("A", 3), ("B", 1))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2", "w3"])
    ramp = Ramp(d, target=1000, spawn_rate=100, now=t0)
    now = t0
    while not ramp.done:
        ramp.advance(now)
        assert d.user_count == min(1000, math.floor(100 * (now - t0) + 1e-6) + 1)
        due = ramp.next_due()
        if due is not None:
            assert due > now
            now = min(due, now + 0.1)
    assert now - t0 == pytest.approx(9.99)
    check(d, classes)


def test_ramp_down():
    classes = specs(("A", 1), ("B", 1))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2"])
    d.step_to(10)
    ramp = Ramp(d, target=2, spawn_rate=2, now=0.0)
    assert ramp.next_due() == 0.0
    ramp.advance(0.0)
    assert d.user_count == 9
    ramp.advance(2.0)
    assert d.user_count == 5
    check(d, classes)
    log = drive(ramp, 2.0)
    assert [t for t, _ in log] == [2.5, 3.0, 3.5]
    assert d.user_count == 2
    assert ramp.done
    check(d, classes)


def test_new_target_mid_ramp_starts_from_current_count():
    d = Dispatcher(specs(("A", 1)))
    d.set_workers(["w1", "w2"])
    up = Ramp(d, target=100, spawn_rate=10, now=0.0)
    up.advance(2.95)
    assert d.user_count == 30
    down = Ramp(d, target=10, spawn_rate=5, now=3.0)
    down.advance(6.7)
    assert d.user_count == 11
    down.advance(6.8)
    assert d.user_count == 10
    assert down.done


def test_ramp_edge_cases():
    d = Dispatcher(specs(("A", 1)))
    d.set_workers(["w1"])
    same = Ramp(d, target=0, spawn_rate=1, now=0.0)
    assert same.done
    assert same.next_due() is None
    assert same.advance(5.0) == set()
    instant = Ramp(d, target=50, spawn_rate=math.inf, now=0.0)
    assert instant.next_due() == 0.0
    assert instant.advance(0.0) == {"w1"}
    assert d.user_count == 50
    assert instant.done
    # A clock that steps back does not undo anything.
    r = Ramp(d, target=60, spawn_rate=1, now=10.0)
    r.advance(15.0)
    assert r.advance(12.0) == set()
    assert d.user_count == 56
    for bad_rate in (0, -1, math.nan):
        with pytest.raises(ValueError, match="spawn rate"):
            Ramp(d, target=1, spawn_rate=bad_rate, now=0.0)
    with pytest.raises(ValueError, match="target"):
        Ramp(d, target=-1, spawn_rate=1, now=0.0)


def test_worker_joining_mid_ramp():
    classes = specs(("A", 2), ("B", 1))
    d = Dispatcher(classes)
    d.set_workers(["w1", "w2"])
    ramp = Ramp(d, target=60, spawn_rate=10, now=0.0)
    ramp.advance(2.0)
    changed = d.set_workers(["w1", "w2", "w3"])
    assert "w3" in changed
    check(d, classes)
    drive(ramp, 2.0)
    assert d.user_count == 60
    assert all(sum(d.worker_target(w).values()) == 20 for w in d.workers)


def test_a_ramp_never_moves_a_class_against_its_direction() -> None:
    """5:3:1 makes largest remainder shrink a class every ninth user; a ramp must not stop and
    restart users for that (their on_stop/on_start would run), yet end exactly on target."""
    classes = [UserClassSpec("A", 5), UserClassSpec("B", 3), UserClassSpec("C", 1)]
    for workers, (start, target) in itertools.product((1, 3), ((0, 90), (90, 7))):
        d = Dispatcher(classes)
        d.set_workers([f"w{i}" for i in range(workers)])
        d.step_to(start)
        ramp = Ramp(d, target, 1.0, now=0.0)
        previous = dict(d.class_counts)
        t = 0.0
        while not ramp.done:
            t += 1.0
            ramp.advance(t)
            now = d.class_counts
            for name in now:
                moved = now[name] - previous[name]
                assert moved * (target - start) >= 0, (name, previous, now)
            previous = dict(now)
        assert d.class_counts == class_totals(classes, target)


def test_ramp_paces_its_steps_the_same_for_every_runtime() -> None:
    """spread: the step's users start until the next one is due (at most 0.1 s); pause: the
    loop sleeps until then, 10 ms at least, 100 ms at most (the master and library mode)."""
    d = Dispatcher(specs(("A", 1)))
    d.set_workers(["w1"])
    slow = Ramp(d, target=10, spawn_rate=20, now=0.0)  # a user every 50 ms
    slow.advance(0.06)
    assert d.user_count == 2
    assert slow.spread(0.06) == pytest.approx(0.04)
    assert slow.pause(0.06) == pytest.approx(0.04)
    assert slow.pause(0.0999) == pytest.approx(0.01)  # never a busy loop
    d2 = Dispatcher(specs(("A", 1)))
    d2.set_workers(["w1"])
    crawl = Ramp(d2, target=3, spawn_rate=1, now=0.0)  # a user a second
    crawl.advance(1.0)
    assert crawl.spread(1.0) == pytest.approx(0.1)
    assert crawl.pause(1.0) == pytest.approx(0.1)
    crawl.advance(3.0)
    assert crawl.done
    assert crawl.spread(3.0) == 0.0
    assert crawl.pause(3.0) == pytest.approx(0.1)
