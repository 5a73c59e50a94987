"""The bound on what lost workers did that no report carried: the pure rule, then the master
keeping the times it needs, with fake worker ids and its own clock readings."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lcore import unreported
from lcore.env import Environment
from lcore.exporters.prometheus import make_registry, render
from lcore.exporters.report_json import unreported_to_json
from lcore.exporters.web_documents import stats_document
from lcore.master import MasterRuntime
from lcore.protocol import StatsReport
from lcore.stats import RequestStats
from lcore.users import HttpUser


@dataclass
class Node:
    id: str
    host: str = "box"
    last_rate: float | None = None
    last_report_at: float | None = None
    lost_at: float | None = None


def test_the_bound_is_the_last_rate_over_the_silent_seconds() -> None:
    shares = unreported.bound(
        [
            Node("a", last_rate=40.0, last_report_at=100.0, lost_at=104.5),
            Node("b", last_rate=None, last_report_at=None, lost_at=101.0),  # never reported
            Node("c", last_rate=10.0, last_report_at=108.0, lost_at=105.0),  # a late delta came
        ]
    )
    assert [(s.worker, s.requests) for s in shares] == [("a", 180), ("b", None), ("c", 0)]
    assert unreported.total(shares) == (180, 1)
    line = unreported.summary_line(shares, 3)
    assert line.startswith("3 worker(s) lost during the test: up to 180 requests")
    assert "a (box) 40.0 req/s x 4.5 s silent" in line and "1 lost before its first report" in line
    # a reset after the loss: not in the figures anyway; a reset in between: counted from it
    assert unreported.bound([Node("a", 40.0, 100.0, 104.5)], since=105.0) == []
    (share,) = unreported.bound(
        [Node("a", last_rate=40.0, last_report_at=100.0, lost_at=104.5)], 103.0
    )
    assert share.requests == 60
    assert (
        unreported.rate_of(50, 10.0, 10.5) == 100.0 and unreported.rate_of(5, 10.0, 10.01) is None
    )
    document = unreported_to_json(shares)
    assert document["requests_at_most"] == 180 and document["workers_without_a_rate"] == 1
    assert document["workers"][0] == {
        "worker": "a", "host": "box", "last_rate": 40.0, "silent_seconds": 4.5, "requests_at_most": 180,
    }  # fmt: skip


class Visitor(HttpUser):
    host = "http://127.0.0.1:1"


def report(
    runtime: MasterRuntime, node_id: str, seq: int, requests: int, start: float, end: float
) -> None:
    stats = RequestStats()
    for _ in range(requests):
        stats.record("GET", "/", 5.0, 10, None)
    delta = stats.take_delta()
    delta.start, delta.end = start, end
    runtime._stats_report(
        runtime.workers.get(node_id) or runtime.lost_workers[0],
        StatsReport(seq, delta.to_wire(), {}, {}),
    )


def test_the_master_bounds_a_lost_worker_until_it_comes_back() -> None:
    from lcore._version import PROTOCOL_VERSION, __version__
    from lcore.protocol import Hello

    runtime = MasterRuntime(Environment(user_classes=[Visitor]), endpoints=[], digest="d")
    hello = Hello(PROTOCOL_VERSION, __version__, "box", 123, 1, "d")
    runtime._hello("w1", hello)
    node = runtime.workers["w1"]
    node.asked_most = {"Visitor": 10}
    import time

    now = time.time()
    report(runtime, "w1", 1, 20, now - 1.0, now - 0.5)  # 40 requests a second
    assert node.last_rate == 40.0
    runtime._lose(node, 3.0)
    (share,) = runtime.unreported_bound()
    assert (
        share.rate == 40.0
        and 0 <= share.silent < 5
        and share.requests == math.ceil(40 * share.silent)
    )
    # the same bound on /metrics and in /api/stats
    text = render(make_registry(runtime))[0].decode()
    assert f"lcore_unreported_requests {float(share.requests)}" in text
    assert stats_document(runtime, readonly=True)["unreported_requests"] == share.requests
    # its late delta arrives (it was frozen, not dead): nothing more is missing from it
    report(runtime, "w1", 2, 4, now - 0.5, now - 0.4)
    assert [s.requests for s in runtime.unreported_bound()] == [0]
    # and once it says hello again, it is no longer lost at all
    runtime._hello("w1", hello)
    assert runtime.unreported_bound() == []
