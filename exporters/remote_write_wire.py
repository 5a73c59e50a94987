"""Prometheus remote write 1.0 on the wire: the /metrics series as a snappy-compressed
``WriteRequest`` protobuf. Pure (no asyncio, no HTTP): the pusher in ``remote_write`` sends it.

The few messages of the spec, encoded by hand (a generated module would be larger than this)::

    WriteRequest { repeated TimeSeries timeseries = 1; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // milliseconds since the epoch

Per the spec: every series has ``__name__``, its labels sorted by name, no empty label value
(an empty value is no label, as a scrape reads it), each name once.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

import cramjam
from prometheus_client.metrics_core import Metric

CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
PROTOCOL_VERSION = "0.1.0"
"""The X-Prometheus-Remote-Write-Version of spec 1.0."""

Labels = tuple[tuple[str, str], ...]
Series = tuple[Labels, float]


def series_of(families: Iterable[Metric], extra_labels: Mapping[str, str] | None = None) -> list[Series]:
    """Every sample of ``families`` (a registry's ``collect()``, what a scrape shows) as (sorted
    labels, value); ``extra_labels`` (run_id, --label's) are added to each, a series' own label
    of the same name winning."""
    out: list[Series] = []
    for family in families:
        for sample in family.samples:
            labels = {k: v for k, v in (extra_labels or {}).items() if v}
            labels.update((k, v) for k, v in sample.labels.items() if v != "")
            labels["__name__"] = sample.name
            out.append((tuple(sorted(labels.items())), float(sample.value)))
    return out


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 as protobuf writes it: two's complement, ten bytes
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings and embedded messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


_TAG_VALUE = bytes([1 << 3 | 1])  # Sample.value: a 64-bit double
_TAG_TIMESTAMP = bytes([2 << 3 | 0])  # Sample.timestamp: a varint


def encode_write_request(series: Iterable[Series], timestamp_ms: int) -> bytes:
    """The uncompressed WriteRequest: one sample per series, all at ``timestamp_ms``."""
    stamp = _TAG_TIMESTAMP + _varint(timestamp_ms)
    chunks = []
    label_cache: dict[tuple[str, str], bytes] = {}
    for labels, value in series:
        parts = []
        for pair in labels:
            encoded = label_cache.get(pair)
            if encoded is None:
                name, text = pair
                encoded = _field(1, _field(1, name.encode()) + _field(2, text.encode()))
                label_cache[pair] = encoded
            parts.append(encoded)
        if math.isnan(value):
            value = math.nan  # one NaN, never the bit pattern of a staleness marker
        sample = _field(2, _TAG_VALUE + struct.pack("<d", value) + stamp)
        chunks.append(_field(1, b"".join(parts) + sample))
    return b"".join(chunks)


def compress(body: bytes) -> bytes:
    """Snappy's block format (not the framed one), as the spec requires."""
    return bytes(cramjam.snappy.compress_raw(body))
