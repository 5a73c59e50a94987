"""Checks of option values against the world (URLs, directories, TLS files), made before any
process starts so a mistake is one ``lcore: error:`` line instead of a traceback, or a report
lost at the end of a long run."""

from __future__ import annotations

import argparse
import os
import re
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

from .parser import OptionsError, option_getter

# a scheme as RFC 3986 spells it, followed by '://'
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# what was meant as an http(s) URL ('http:/x', 'http//x', 'https:x') and what one must be
_HTTPISH = re.compile(r"^https?[:/]", re.IGNORECASE)
_HTTP = re.compile(r"^https?://", re.IGNORECASE)


def check_host(host: str) -> None:
    """-H is a base URL for HttpUser, but locust.contrib users take other things there: a
    ``postgres://`` or ``mongodb://`` connection string, ``:memory:`` (qdrant), a file path
    (milvus lite), a broker host name (mqtt, ``localhost`` or ``broker:1883``), a libpq
    ``host=... dbname=...`` string. So only two shapes are refused: a broken http(s) URL, and a
    bare word that can be none of those (no scheme, dot, slash, colon, '=' or space)."""
    if _HTTPISH.match(host):
        if not _HTTP.match(host):
            raise OptionsError(f"-H/--host {host!r} is not a URL: expected http(s)://host[:port][/path]")
        try:
            parts = urlsplit(host)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError as e:
            raise OptionsError(f"-H/--host {host!r} is not a valid URL: {e}") from None
        if not parts.hostname:
            raise OptionsError(f"-H/--host {host!r} has no host name: expected http(s)://host[:port][/path]")
        return
    if _SCHEME.match(host) or host == "localhost":
        return  # another protocol's URL (postgres://, mongodb://, mqtt://): its user checks it
    if not host or not any(c in host for c in "./\\:= "):
        raise OptionsError(
            f"-H/--host {host!r} is not a URL: expected http(s)://host[:port][/path] "
            "(or what a locust.contrib user takes there, e.g. a connection string)"
        )


def check_output_file(flag: str, path: str) -> None:
    """The file can be created (or overwritten) now, not only at the end of the run."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise OptionsError(f"{flag} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise OptionsError(f"{flag} {path}: is a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise OptionsError(f"{flag} {path}: file is not writable")
    elif not os.access(directory, os.W_OK | os.X_OK):
        raise OptionsError(f"{flag} {path}: directory {directory} is not writable")


def check_tls_files(cert: str, key: str) -> None:
    if not (cert or key):
        return
    if not (cert and key):
        raise OptionsError("--tls-cert and --tls-key go together")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as e:
            raise OptionsError(f"{flag} {path}: {e.strerror or e}") from None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as e:
        raise OptionsError(
            f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its private key ({e})"
        ) from None


def check_metrics_buckets(text: str) -> None:
    """--metrics-buckets as /metrics will use them: the master's web server would otherwise
    refuse them only once it starts, after the processes are forked."""
    from lcore.exporters.prometheus import parse_buckets

    try:
        parse_buckets(text)
    except ValueError as e:
        raise OptionsError(f"--metrics-buckets: {e}") from None


def check_master_host(host: str, timeout: float) -> None:
    """A worker's --master-host resolves, or this is one line and exit 1 (zmq would retry an
    unresolvable name silently, as "Waiting for the master"). A name is retried for up to
    --connect-timeout, as the master is waited for: on Kubernetes its Service may come later."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            return
        except (socket.gaierror, UnicodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
        if time.monotonic() >= deadline:
            raise OptionsError(
                f"--master-host {host}: cannot resolve this name ({reason}); gave up after {timeout:.0f} s"
            )
        if not said:
            sys.stderr.write(f"lcore: --master-host {host} does not resolve ({reason}); retrying ...\n")
            said = True
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def check_world(options: argparse.Namespace) -> None:
    get = option_getter(options)
    if get("host"):
        check_host(get("host"))
    if get("web_auth") is not None:
        user, colon, _ = get("web_auth").partition(":")
        if not colon:
            raise OptionsError("--web-auth must be USER:PASSWORD (with a colon)")
        if not user:
            raise OptionsError("--web-auth must be USER:PASSWORD (a user name before the colon)")
    if get("metrics_buckets") and not get("worker") and not get("no_web"):
        check_metrics_buckets(get("metrics_buckets"))
    if get("csv_prefix"):
        # PREFIX_stats.csv and the others land next to the prefix
        check_output_file("--csv", get("csv_prefix") + "_stats.csv")
    for dest, flag in (("html_file", "--html"), ("json_file", "--json-file"), ("logfile", "--logfile")):
        if get(dest):
            check_output_file(flag, get(dest))
    if get("worker") and get("master_host"):
        check_master_host(get("master_host"), get("connect_timeout") or 60.0)
    if not get("worker"):
        check_tls_files(get("tls_cert") or "", get("tls_key") or "")
