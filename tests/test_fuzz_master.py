"""Hostile input at a running master's socket: thousands of bad frames, then a real test to exact counts."""

from __future__ import annotations

import random
import textwrap

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_engine import BASIC, free_port, read_stats_csv

from lcore import protocol as p
from lcore._version import PROTOCOL_VERSION, __version__
from lcore.locustfile import digest

pytestmark = pytest.mark.integration

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20), st.binary(max_size=20))
nested = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5), max_leaves=20)
type_names = st.sampled_from([*p.MESSAGE_TYPES, "", "nope", "x" * 300])
shaped = st.builds(lambda t, n, f: msgpack.packb([t, n, f]), type_names, st.text(max_size=10), st.lists(nested, max_size=8))
frames = st.one_of(st.binary(max_size=200), shaped, st.builds(msgpack.packb, nested))


def mutations(seeds: list[bytes], count: int, rng: random.Random) -> list[bytes]:
    """Truncations and byte flips of the hypothesis-made frames: thousands of near-misses."""
    out = list(seeds)
    while len(out) < count:
        frame = bytearray(rng.choice(seeds) or b"\x90")
        if rng.random() < 0.5:
            del frame[rng.randrange(len(frame)) :]
        else:
            for _ in range(rng.randint(1, 4)):
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        out.append(bytes(frame))
    return out


# one example, never shrunk: a re-run would share the target and its counts, hiding the first failure
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(seeds=st.lists(frames, min_size=100, max_size=100))
def test_master_survives_garbage_then_runs_exactly(seeds, tmp_path_factory, target, run_lcore) -> None:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    lf = tmp_path / "locustfile.py"
    lf.write_text(textwrap.dedent(BASIC))
    port = free_port()
    prefix = tmp_path / "fuzz"
    master = run_lcore(
        "-f", str(lf), "-H", target.url, "--master", "--headless", "--expect-workers", "1",
        "-u", "3", "-r", "10", "-t", "6s", "--csv", str(prefix), "--master-bind-port", str(port), "--no-web",
        cwd=tmp_path,
    )  # fmt: skip
    master.wait_for_output("Waiting for workers", timeout=30)
    # the real worker first: a welcomed fuzzer that quits must not be the last worker, which
    # ends the test ("The last worker quit") before the real one has joined
    worker = run_lcore("-f", str(lf), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), cwd=tmp_path)
    master.wait_for_output(") connected", timeout=30)
    ctx = zmq.Context()
    try:
        rng = random.Random(0)
        batch = mutations(seeds, 3000, rng)
        socks = []
        for i in range(5):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 2000)
            s.setsockopt(zmq.IDENTITY, f"fuzzer-{i}".encode())
            s.connect(f"tcp://127.0.0.1:{port}")
            socks.append(s)
        for frame in batch:
            rng.choice(socks).send(frame)
        # a flood of hellos from liars about their version, and multipart junk
        for i in range(500):
            s = socks[i % len(socks)]
            s.send(p.encode(p.Hello(PROTOCOL_VERSION, "9.9.9", "liar", i, 1, "x"), f"liar-{i}"))
        socks[0].send_multipart([b"a", b"b", b"c"])
        # a welcomed node sending absurd stats: rejected, never half-merged
        ok = ctx.socket(zmq.DEALER)
        ok.setsockopt(zmq.LINGER, 2000)
        ok.setsockopt(zmq.IDENTITY, b"sneaky")
        ok.connect(f"tcp://127.0.0.1:{port}")
        ok.send(p.encode(p.Hello(PROTOCOL_VERSION, __version__, "sneaky", 1, 1, digest(str(lf))), "sneaky"))
        assert ok.poll(10000)
        for delta in ([[["GET", "/", -5, 0, 0, 0, 0, 0, []]]], [[1, 2, 3]], ["x"], [[[]] * 10**3]):
            ok.send(p.encode(p.StatsReport(1, delta, {}), "sneaky"))
        ok.send(p.encode(p.Goodbye("done"), "sneaky"))
        # a frame over the size cap: the socket drops it before allocating it
        big = ctx.socket(zmq.DEALER)
        big.setsockopt(zmq.LINGER, 5000)
        big.connect(f"tcp://127.0.0.1:{port}")
        big.send(b"\x00" * (p.MAX_FRAME_BYTES + 1))
        for s in [*socks, ok, big]:
            s.close()
    finally:
        ctx.term()
    assert master.wait(90) == 0, master.output[-3000:]
    assert worker.wait(30) == 0, worker.output[-3000:]
    out = master.output
    assert "Dropped a malformed message" in out
    assert "Refused worker" in out
    assert "Traceback" not in out
    rows = read_stats_csv(prefix)
    assert int(rows["Aggregated"]["Request Count"]) == sum(target.counts().values()) > 0, out[-3000:]
