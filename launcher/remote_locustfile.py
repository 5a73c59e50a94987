"""``-f https://host/path/locustfile.py``: a locustfile fetched over HTTP(S), as Locust allows.

The launcher fetches it once, checks that it is Python, and keeps it in a private temporary
directory for the whole run (its processes load it from there); the directory goes when the
launcher exits."""

from __future__ import annotations

import ast
import atexit
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from .parser import OptionsError

FETCH_TIMEOUT = 30.0
MAX_BYTES = 16 * 1024 * 1024


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def fetch_locustfile(url: str) -> str:
    """The local path of the locustfile at ``url``; OptionsError (one line) if it cannot be had."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:  # noqa: S310 - http(s) only
            body = answer.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        raise OptionsError(f"Failed to get locustfile from {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise OptionsError(f"Failed to get locustfile from {url}: {reason}") from None
    if len(body) > MAX_BYTES:
        raise OptionsError(f"Failed to get locustfile from {url}: larger than {MAX_BYTES // 2**20} MiB")
    try:
        text = body.decode("utf-8")
        ast.parse(text)
    except (UnicodeDecodeError, SyntaxError):
        raise OptionsError(f"Failed to get locustfile from {url}: the answer is not Python code") from None
    name = os.path.basename(urlsplit(url).path) or "locustfile.py"
    if not name.endswith(".py"):
        name += ".py"
    directory = tempfile.mkdtemp(prefix="lcore-locustfile-")
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # only the launcher: its forked processes inherit the handler
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
