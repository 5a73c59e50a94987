"""``-f -`` on a worker: fetch the locustfile's directory from the master before anything loads.

A plain (blocking) DEALER socket of its own, closed before the worker runtime opens its own:
nothing else runs in the process yet. The request is repeated every second until the master
answers (it may not be up yet), as Locust's worker does; CURVE keys apply as on the worker's
socket. ``fetch`` returns the extracted tree in a private temporary directory, which the
caller removes at exit.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

from lcore import bundle
from lcore import protocol as p
from lcore._version import PROTOCOL_VERSION, __version__
from lcore.curve import WorkerKeys, apply_client

log = logging.getLogger("lcore.main")

RETRY_INTERVAL = 1.0
ANNOUNCE_AFTER = 3.0


@dataclass(frozen=True)
class Fetched:
    manifest: bundle.Manifest
    digest: str

    @property
    def locustfile(self) -> str:
        """What to load, in ``-f`` form: the master's locustfile(s), in the extracted tree."""
        return ",".join(self.manifest.locustfiles)

    def remove(self) -> None:
        shutil.rmtree(self.manifest.directory, ignore_errors=True)


def fetch(
    endpoint: str,
    *,
    timeout: float,
    max_bytes: int = bundle.DEFAULT_MAX_BYTES,
    curve: WorkerKeys | None = None,
) -> Fetched:
    """The master's locustfile tree, extracted; BundleError (one line) when that cannot be."""
    shown = endpoint.split("://", 1)[-1]
    context = zmq.Context()
    try:
        data, digest = _download(context, endpoint, shown, timeout, max_bytes, curve)
    finally:
        context.destroy(linger=0)
    directory = tempfile.mkdtemp(prefix="lcore-locustfile-")  # 0700: only this user reads it
    try:
        manifest = bundle.extract(data, directory, max_bytes)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    log.info(
        "Got the locustfile from the master at %s: %s, with its directory (%d files, digest %s)",
        shown, ", ".join(os.path.relpath(f, directory) for f in manifest.locustfiles),
        manifest.files, digest[:12],
    )  # fmt: skip
    return Fetched(manifest, digest)


def _refusal(event: int, shown: str, curve: WorkerKeys | None) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"The master at {shown} refused this worker's CURVE key"
    if curve is None:
        return f"The master at {shown} refused this worker: it requires CURVE keys (--curve-keys)"
    return (
        f"The master at {shown} refused this worker: it has no CURVE keys, this worker has "
        "(--curve-keys on both or on neither)"
    )


def _download(
    context: zmq.Context, endpoint: str, shown: str, timeout: float, max_bytes: int, curve: WorkerKeys | None
) -> tuple[bytes, str]:
    sock = context.socket(zmq.DEALER)
    # an identity of its own: the master tells this socket from the worker's, as Locust does
    sock.setsockopt(zmq.IDENTITY, f"{socket.gethostname()}_fetch_{uuid.uuid4().hex}".encode())
    sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_FRAME_BYTES)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)  # no requests queued for a master not yet connected
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    if curve is not None:
        apply_client(sock, curve)
    # a CURVE master refuses a worker without keys (and a plain one a worker with keys) as a
    # protocol failure: watched too, so that is said instead of waiting for a master not there
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    poller.register(monitor, zmq.POLLIN)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as e:
        raise bundle.BundleError(f"Cannot connect to the master at {shown}: {e}") from None
    download = bundle.Download(max_bytes)
    started = time.monotonic()
    deadline = started + timeout
    announced = reached = False
    while True:
        asked, unsent = download.next_offset, True
        until = time.monotonic() + RETRY_INTERVAL
        while download.next_offset == asked and (left := until - time.monotonic()) > 0:
            # IMMEDIATE: writable once connected, so the first request leaves at once
            poller.modify(sock, zmq.POLLIN | (zmq.POLLOUT if unsent else 0))
            events = dict(poller.poll(int(left * 1000)))
            if monitor in events:
                raise bundle.BundleError(_refusal(recv_monitor_message(monitor)["event"], shown, curve))
            flags = events.get(sock, 0)
            if flags & zmq.POLLOUT:
                request = p.BundleRequest(PROTOCOL_VERSION, __version__, asked)
                try:
                    sock.send(p.encode(request, "fetch"), zmq.NOBLOCK)
                    unsent = False
                    reached = True
                except zmq.Again:
                    pass
            if not flags & zmq.POLLIN:
                continue
            try:
                chunk, _ = p.decode(sock.recv())
            except p.ProtocolError as e:
                log.debug("dropped a malformed frame from the master: %s", e)
                continue
            if isinstance(chunk, p.BundleChunk) and download.add(
                chunk.digest, chunk.total, chunk.offset, chunk.data, chunk.error
            ):
                return download.data, download.digest
        now = time.monotonic()
        if download.next_offset != asked:
            deadline = now + timeout  # progress: the master is there
        elif now >= deadline and reached:
            raise bundle.BundleError(
                f"The master at {shown} did not send the locustfile (-f -) within {timeout:.0f} s: "
                "is it lcore, of this version, started with --master?"
            )
        elif now >= deadline:
            raise bundle.BundleError(
                f"Could not reach the master at {shown} to get the locustfile (-f -): "
                f"gave up after {timeout:.0f} s"
            )
        elif not announced and now - started >= ANNOUNCE_AFTER:
            log.warning("Waiting for the master at %s to send the locustfile ...", shown)
            announced = True
