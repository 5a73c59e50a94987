"""CURVE keys: ZeroMQ's authenticated encryption between master and workers.

A key directory holds ZeroMQ certificate files (``NAME.key`` public, ``NAME.key_secret``
both halves). ``lcore keys generate DIR`` writes the master's pair, a worker pair and
``DIR/authorized/worker.key``; the master accepts exactly the public keys in
``DIR/authorized/``. A worker's directory holds ``master.key`` and its own pair. Local ipc
workers get a throw-away pair from the launcher, so users never handle keys for them.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.auth

MASTER = "master"
AUTHORIZED = "authorized"


class CurveError(Exception):
    """A key directory that cannot be used; the message is one line."""


@dataclass
class MasterKeys:
    public: bytes
    secret: bytes
    authorized: set[bytes] = field(default_factory=set)


@dataclass
class WorkerKeys:
    public: bytes
    secret: bytes
    server_public: bytes


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise CurveError("this build of libzmq has no CURVE support")


def generate(directory: str) -> list[str]:
    """A master pair, a worker pair and the worker authorized; returns the files written."""
    _require_curve()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.path.exists(os.path.join(directory, f"{MASTER}.key_secret")):
        raise CurveError(f"{directory} already holds a master key; not overwriting it")
    written = list(zmq.auth.create_certificates(directory, MASTER))
    os.chmod(written[1], 0o600)
    written += add_worker(directory, "worker")
    return written


def add_worker(directory: str, name: str) -> list[str]:
    """Another worker pair, authorized on the master."""
    _require_curve()
    if not name or os.sep in name or name in (MASTER, AUTHORIZED):
        raise CurveError(f"invalid worker name {name!r}")
    if os.path.exists(os.path.join(directory, f"{name}.key_secret")):
        raise CurveError(f"{directory} already holds a key named {name!r}")
    public, secret = zmq.auth.create_certificates(directory, name)
    os.chmod(secret, 0o600)
    authorized = os.path.join(directory, AUTHORIZED)
    os.makedirs(authorized, mode=0o700, exist_ok=True)
    shutil.copy(public, os.path.join(authorized, f"{name}.key"))
    return [public, secret, os.path.join(authorized, f"{name}.key")]


def _load(path: str) -> tuple[bytes, bytes | None]:
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise CurveError(f"cannot read CURVE key {path}: {e}") from e


def load_master_keys(directory: str) -> MasterKeys:
    _require_curve()
    if not os.path.isdir(directory):
        raise CurveError(f"CURVE key directory {directory} does not exist")
    public, secret = _load(os.path.join(directory, f"{MASTER}.key_secret"))
    if secret is None:
        raise CurveError(f"{directory}/{MASTER}.key_secret holds no secret key")
    authorized = set()
    for path in sorted(glob.glob(os.path.join(directory, AUTHORIZED, "*.key"))):
        authorized.add(_load(path)[0])
    if not authorized:
        raise CurveError(f"no worker keys in {directory}/{AUTHORIZED}/ (lcore keys add-worker {directory} NAME)")
    return MasterKeys(public, secret, authorized)


def load_worker_keys(directory: str) -> WorkerKeys:
    _require_curve()
    if not os.path.isdir(directory):
        raise CurveError(f"CURVE key directory {directory} does not exist")
    server_public, _ = _load(os.path.join(directory, f"{MASTER}.key"))
    pairs = [p for p in sorted(glob.glob(os.path.join(directory, "*.key_secret"))) if os.path.basename(p) != f"{MASTER}.key_secret"]
    preferred = os.path.join(directory, "worker.key_secret")
    if preferred in pairs:
        pairs = [preferred]
    if len(pairs) != 1:
        found = "none" if not pairs else ", ".join(os.path.basename(p) for p in pairs)
        raise CurveError(f"{directory} must hold exactly one worker key pair (*.key_secret), found {found}")
    public, secret = _load(pairs[0])
    if secret is None:
        raise CurveError(f"{pairs[0]} holds no secret key")
    return WorkerKeys(public, secret, server_public)


def local_worker_keys(master: MasterKeys) -> WorkerKeys:
    """A throw-away pair for this run's local workers, authorized on the master."""
    public, secret = zmq.curve_keypair()
    master.authorized.add(public)
    return WorkerKeys(public, secret, master.public)


def apply_server(sock: zmq.Socket[Any], keys: MasterKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def apply_client(sock: zmq.Socket[Any], keys: WorkerKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server_public
