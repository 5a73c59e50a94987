"""Messages between master and workers: one frozen dataclass per type, msgpack on the wire.

A frame is ``msgpack([type, node_id, [field, ...]])``. ``decode`` is the one boundary where
bytes become messages: anything that does not fit (not msgpack, wrong shape, unknown type,
a field of the wrong type, a value out of its range) raises ``ProtocolError`` and nothing
else happens. No gevent, no asyncio here: master and worker share this module.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

# A frame bigger than this is refused by the socket itself (ZMQ_MAXMSGSIZE), before allocation.
MAX_FRAME_BYTES = 16 * 1024 * 1024


class ProtocolError(ValueError):
    """A frame that is not a valid message."""


# ``decode`` checks that such a field is a dict (a list) and no more: its receiver checks the
# keys and values it reads, as it reads them.
WireDict = dict[Any, Any]
WireList = list[Any]


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""


@dataclass(frozen=True)
class Hello(Message):
    """worker -> master, first message: who I am and what I run."""

    TYPE: ClassVar[str] = "hello"
    protocol: int
    version: str
    host: str
    pid: int
    cores: int
    digest: str


@dataclass(frozen=True)
class Welcome(Message):
    """master -> worker: accepted (with the run's options) or refused (with the reason).
    ``options`` are the locustfile's own options and the master's test selection, never the
    master's local paths or bookkeeping (what a peer on the port may read)."""

    TYPE: ClassVar[str] = "welcome"
    accepted: bool
    reason: str
    options: WireDict = field(default_factory=dict)
    index: int = 0
    run_uid: str = ""  # the run id (lcore.run_ids) the worker's JSON log lines carry


@dataclass(frozen=True)
class Spawn(Message):
    """master -> worker: run exactly these many users of each class (start new ones over `spread` s)."""

    TYPE: ClassVar[str] = "spawn"
    targets: WireDict
    spread: float
    host: str
    run_id: int
    # slots of users that ended themselves (StopUser) charged to this worker, per class: they
    # are never started again; ``ended_seen`` is how many of this worker's own endings that
    # charge already counts (the rest the worker deducts itself)
    spent: WireDict = field(default_factory=dict)
    ended_seen: WireDict = field(default_factory=dict)
    options: WireDict = field(default_factory=dict)  # the locustfile's options, as the page set them
    run_uid: str = ""  # the run id of this test (a new test from the page gets a new one)


@dataclass(frozen=True)
class Stop(Message):
    """master -> worker: stop every user (the test ends; the worker stays)."""

    TYPE: ClassVar[str] = "stop"
    run_id: int
    # the open model: no arrival due after this (wall clock) runs, however late Stop arrives
    at: float = 0.0


@dataclass(frozen=True)
class Quit(Message):
    """master -> worker: exit."""

    TYPE: ClassVar[str] = "quit"
    reason: str


@dataclass(frozen=True)
class Heartbeat(Message):
    """both ways every second; the worker's carries its CPU use and state."""

    TYPE: ClassVar[str] = "heartbeat"
    state: str
    cpu: float
    user_count: int


@dataclass(frozen=True)
class StatsReport(Message):
    """worker -> master: the stats delta since the last one and the current users per class."""

    TYPE: ClassVar[str] = "stats"
    seq: int
    delta: WireList
    user_classes_count: WireDict
    extra: WireDict = field(default_factory=dict)  # what report_to_master listeners added


@dataclass(frozen=True)
class Stopped(Message):
    """worker -> master: every user has stopped (after Stop); the final delta precedes it."""

    TYPE: ClassVar[str] = "stopped"
    run_id: int


@dataclass(frozen=True)
class SpawningComplete(Message):
    TYPE: ClassVar[str] = "spawning_complete"
    user_classes_count: WireDict


@dataclass(frozen=True)
class CpuWarning(Message):
    TYPE: ClassVar[str] = "cpu_warning"
    cpu: float


@dataclass(frozen=True)
class Log(Message):
    """worker -> master: a log line (WARNING and above), and how many lines the worker's rate
    limit dropped before it (a Log with an empty message carries only that count)."""

    TYPE: ClassVar[str] = "log"
    level: str
    message: str
    name: str = ""  # the logger's name on the worker
    dropped: int = 0
    traceback: str = ""  # the record's traceback and stack, apart from its message
    created: float = 0.0  # when the worker logged it (seconds since the epoch)


@dataclass(frozen=True)
class UsersEnded(Message):
    """worker -> master: how many users of each class ended themselves in this run (in all)."""

    TYPE: ClassVar[str] = "users_ended"
    run_id: int
    ended: WireDict


@dataclass(frozen=True)
class StopTestRequest(Message):
    """worker -> master: a user raised StopTest; the master stops the test."""

    TYPE: ClassVar[str] = "stop_test"
    run_id: int
    reason: str


@dataclass(frozen=True)
class IterationsWanted(Message):
    """worker -> master: lease me this many more task runs (``-i/--iterations``)."""

    TYPE: ClassVar[str] = "iterations_wanted"
    run_id: int
    count: int


@dataclass(frozen=True)
class IterationsGranted(Message):
    """master -> worker: run this many more tasks; ``last``: there are no more after them."""

    TYPE: ClassVar[str] = "iterations_granted"
    run_id: int
    count: int
    last: bool


@dataclass(frozen=True)
class IterationsDone(Message):
    """worker -> master: my leased task runs are over and my users have ended."""

    TYPE: ClassVar[str] = "iterations_done"
    run_id: int
    ran: int


@dataclass(frozen=True)
class Goodbye(Message):
    """worker -> master: I am leaving (clean exit)."""

    TYPE: ClassVar[str] = "goodbye"
    reason: str


@dataclass(frozen=True)
class Custom(Message):
    """``runner.send_message`` in either direction."""

    TYPE: ClassVar[str] = "custom"
    msg_type: str
    data: Any


def _check_schedule(kind: str, start: float, position: float, rate: float, slot: int, slots: int) -> None:
    values = (start, position, rate)
    if not all(math.isfinite(v) for v in values) or position < 0 or not 0 <= rate <= MAX_RATE:
        raise ProtocolError(f"{kind}: start, position or rate out of range")
    if not 0 <= slots <= MAX_SLOTS or (slots and not 0 <= slot < slots):
        raise ProtocolError(f"{kind}: slot {slot} of {slots} out of range")


# what a schedule may ask of a worker: more than any test runs is not a real schedule
MAX_RATE = 10_000_000.0
MAX_SLOTS = 1_000_000


@dataclass(frozen=True)
class Arrivals(Message):
    """master -> worker, the open model (``--arrival-rate``): run arrivals ``k ≡ slot (mod slots)``
    of the segment (``start`` wall clock, ``position``, ``rate``; see lcore.arrivals), each on a
    free user, starting users on demand up to ``ceiling``; a user class per arrival by
    ``weights``. A later Arrivals of the same run takes over at its segment's boundary."""

    TYPE: ClassVar[str] = "arrivals"
    run_id: int
    start: float
    position: float
    rate: float
    slot: int
    slots: int
    ceiling: int
    weights: WireDict
    host: str = ""
    options: WireDict = field(default_factory=dict)
    end: float = 0.0  # no arrival due after this (wall clock) runs; 0: until told to stop

    def __post_init__(self) -> None:
        if not math.isfinite(self.end):
            raise ProtocolError("arrivals: end out of range")
        _check_schedule("arrivals", self.start, self.position, self.rate, self.slot, self.slots)
        if not 0 <= self.ceiling <= 10_000_000 or len(self.weights) > 1000:
            raise ProtocolError("arrivals: ceiling or weights out of range")
        for name, weight in self.weights.items():
            if not isinstance(name, str) or isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ProtocolError("arrivals: weights must map class names to numbers")
            if not 0 <= weight < 1e12:
                raise ProtocolError("arrivals: a weight out of range")


@dataclass(frozen=True)
class RateCap(Message):
    """master -> worker (``--max-rps``): send each request in a slot of this schedule (same
    form as Arrivals'), at most one request per slot; slots nobody used are not saved up."""

    TYPE: ClassVar[str] = "rate_cap"
    start: float
    position: float
    rate: float
    slot: int
    slots: int

    def __post_init__(self) -> None:
        _check_schedule("rate_cap", self.start, self.position, self.rate, self.slot, self.slots)


# A locustfile bundle travels in chunks no bigger than this (see lcore.bundle).
MAX_CHUNK_BYTES = 1024 * 1024
_MAX_OFFSET = 2**40


@dataclass(frozen=True)
class BundleRequest(Message):
    """worker started with ``-f -`` -> master, before its hello: the locustfile bundle's bytes
    from ``offset`` on. Sent from a socket of its own; repeated until answered."""

    TYPE: ClassVar[str] = "bundle_request"
    protocol: int
    version: str
    offset: int

    def __post_init__(self) -> None:
        if not 0 <= self.offset < _MAX_OFFSET or len(self.version) > 100:
            raise ProtocolError("bundle_request: offset or version out of range")


@dataclass(frozen=True)
class BundleChunk(Message):
    """master -> that socket: ``data`` = bundle bytes [offset, offset + len) of ``total``, or
    ``error`` (one line: too big, nothing to ship) and no data."""

    TYPE: ClassVar[str] = "bundle_chunk"
    digest: str
    total: int
    offset: int
    data: bytes
    error: str = ""

    def __post_init__(self) -> None:
        if not (
            0 <= self.offset <= self.total < _MAX_OFFSET
            and self.offset + len(self.data) <= self.total
            and len(self.data) <= MAX_CHUNK_BYTES
            and len(self.digest) <= 128
            and len(self.error) <= 1000
        ):
            raise ProtocolError("bundle_chunk: offset, size or text out of range")


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello, Welcome, Spawn, Stop, Quit, Heartbeat, StatsReport, Stopped,
        SpawningComplete, CpuWarning, Log, Goodbye, Custom, UsersEnded, StopTestRequest,
        IterationsWanted, IterationsGranted, IterationsDone, BundleRequest, BundleChunk, Arrivals,
        RateCap,
    )
}  # fmt: skip

_PY_TYPES = {
    "int": int,
    "str": str,
    "float": (int, float),
    "bool": bool,
    "bytes": bytes,
    "dict": dict,
    "list": list,
}


def _field_specs(cls: type[Message]) -> list[tuple[str, Any, bool]]:
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        origin = typing.get_origin(hint) or hint  # dict[Any, Any] -> dict
        py = _PY_TYPES.get(getattr(origin, "__name__", ""), object) if hint is not Any else object
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        specs.append((f.name, py, has_default))
    return specs


_SPECS = {t: _field_specs(cls) for t, cls in MESSAGE_TYPES.items()}


def encode(message: Message, node_id: str) -> bytes:
    values = [getattr(message, f.name) for f in dataclasses.fields(message)]
    return msgpack.packb([message.TYPE, node_id, values], use_bin_type=True)


def decode(frame: bytes) -> tuple[Message, str]:
    """Bytes -> (message, sender node id), or ProtocolError."""
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)
    except Exception as e:  # msgpack raises several unrelated classes for bad input
        raise ProtocolError(f"not a msgpack frame ({type(e).__name__})") from None
    if not (isinstance(obj, list) and len(obj) == 3):
        raise ProtocolError("a frame must be [type, node_id, fields]")
    msg_type, node_id, values = obj
    if (
        not isinstance(msg_type, str)
        or not isinstance(node_id, str)
        or not isinstance(values, list)
    ):
        raise ProtocolError("a frame must be [type:str, node_id:str, fields:list]")
    cls = MESSAGE_TYPES.get(msg_type)
    if cls is None:
        raise ProtocolError(f"unknown message type {msg_type[:40]!r}")
    specs = _SPECS[msg_type]
    required = sum(1 for _, _, has_default in specs if not has_default)
    if not required <= len(values) <= len(specs):
        raise ProtocolError(f"{msg_type}: expected {len(specs)} fields, got {len(values)}")
    for (name, py, _), value in zip(specs, values, strict=False):
        if py is not object and (
            not isinstance(value, py) or (py is not bool and isinstance(value, bool) and py is int)
        ):
            raise ProtocolError(
                f"{msg_type}.{name}: expected {getattr(py, '__name__', py)}, got {type(value).__name__}"
            )
    return cls(*values), node_id
