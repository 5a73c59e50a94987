"""Request bodies and query strings: form, JSON, multipart, basic auth."""

from __future__ import annotations

import base64
import json as jsonlib
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode


def basic_auth(auth: tuple[str | bytes, str | bytes]) -> str:
    user, password = (p.encode("latin-1") if isinstance(p, str) else p for p in auth)
    return "Basic " + base64.b64encode(user + b":" + password).decode("ascii")


def encode_params(params: Any) -> str:
    if isinstance(params, (str, bytes)):
        return params.decode() if isinstance(params, bytes) else params
    return urlencode(params, doseq=True)


def encode_body(data: Any, json: Any, files: Any) -> tuple[bytes | None, str | None]:
    """The request body and its Content-Type (None: leave it to the caller's headers)."""
    if files:
        return _encode_multipart(data, files)
    if json is not None and data is None:
        return jsonlib.dumps(json).encode(), "application/json"
    if data is None:
        return None, None
    if isinstance(data, bytes):
        return data, None
    if isinstance(data, str):
        return data.encode("utf-8"), None
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data), None
    if hasattr(data, "read"):
        chunk = data.read()
        return (chunk.encode("utf-8") if isinstance(chunk, str) else chunk), None
    if isinstance(data, (Mapping, list, tuple)):
        return urlencode(data, doseq=True).encode(), "application/x-www-form-urlencoded"
    # Any other iterable: bytes or str blocks, sent as one body.
    return b"".join(b.encode("utf-8") if isinstance(b, str) else b for b in data), None


def _encode_multipart(data: Any, files: Any) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out: list[bytes] = []
    fields = data.items() if isinstance(data, Mapping) else (data or ())
    for name, value in fields:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        )
        out.append(value.encode() if isinstance(value, str) else bytes(value))
        out.append(b"\r\n")
    items = files.items() if isinstance(files, Mapping) else files
    for name, spec in items:
        content_type = "application/octet-stream"
        if isinstance(spec, (tuple, list)):
            filename, fileobj = spec[0], spec[1]
            if len(spec) > 2 and spec[2]:
                content_type = spec[2]
        else:
            fileobj = spec
            filename = getattr(spec, "name", name)
        content = fileobj.read() if hasattr(fileobj, "read") else fileobj
        if isinstance(content, str):
            content = content.encode()
        filename = str(filename).rsplit("/", 1)[-1]
        out.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
            ).encode()
        )
        out.append(bytes(content))
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"
