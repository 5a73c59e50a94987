"""The locustfile's directory as one bundle, for workers started with ``-f -`` (pure: no sockets).

Locust ships a worker the locustfile's text alone; lcore ships the tree around it, so helper
modules, a package and data files (CSV feeders) come along:

- **What**: the locustfile's directory (or, when it sits in a package, the directory above the
  top package), every regular file below it except junk and secrets (``JUNK_DIRS``, hidden
  entries, virtualenvs, byte code, key files). Directory symlinks are not followed.
- **Where**: paths are stored relative to an *anchor* so that the worker can stand where the
  master stands: the master's working directory when the tree is below it, else the tree
  itself; the bundle records that working directory, and the worker runs from its copy of it,
  so ``open("users.csv")`` finds the same file on both sides.
- **How**: ``zlib(msgpack({format, workdir, locustfiles, files: [[path, executable, bytes]]}))``,
  deterministic (sorted, no timestamps); its digest is the sha256 of those bytes. The master
  sends it in chunks of ``CHUNK_BYTES``; the worker reassembles (``Download``), checks the
  digest and extracts into a private directory (``extract``), refusing unsafe paths.
- **Bounds**: at most ``max_bytes`` of file contents (``DEFAULT_MAX_BYTES``) and ``MAX_FILES``
  files, checked by the master before it reads the files and again by the worker before and
  while it decompresses, so a hostile master cannot fill a worker's disk either.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import msgpack

FORMAT = 1
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_FILES = 20_000
CHUNK_BYTES = 512 * 1024
# what msgpack adds around the file contents (paths, framing): generous, still bounded
_OVERHEAD_BYTES = 8 * 1024 * 1024
_COMPRESSED_OVERHEAD_BYTES = 1024 * 1024

JUNK_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
# a directory holding one of these is an environment (virtualenv, conda), not the test
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
JUNK_SUFFIXES = (".pyc", ".pyo", ".key_secret", ".egg-info")


class BundleError(Exception):
    """The bundle cannot be made, fetched or used; the message is one line for the user."""


class BundleTooBig(BundleError):
    """More than the cap: the master refuses to ship it, a worker refuses to take it."""


def size_text(n: float) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{int(n)} bytes"


@dataclass(frozen=True)
class Source:
    """What the master ships: its locustfile(s), seen from its working directory."""

    locustfiles: tuple[str, ...]
    cwd: str
    max_bytes: int = DEFAULT_MAX_BYTES


@dataclass(frozen=True)
class Bundle:
    data: bytes
    digest: str
    files: int
    size: int  # file contents, uncompressed
    root: str  # the directory shipped, as the master sees it

    def chunk(self, offset: int) -> bytes:
        return self.data[offset : offset + CHUNK_BYTES]


@dataclass(frozen=True)
class Contents:
    """A checked payload: safe relative paths, sizes within the cap."""

    files: list[tuple[str, bool, bytes]]
    locustfiles: list[str]
    workdir: str


@dataclass(frozen=True)
class Manifest:
    """An extracted bundle: absolute paths inside the worker's private directory."""

    directory: str
    workdir: str
    locustfiles: tuple[str, ...]
    files: int = 0


# --- packing (master) ---------------------------------------------------------------------


def tree_root(locustfile: str) -> str:
    """The directory shipped for one locustfile: its own, or the one above its top package."""
    path = os.path.abspath(locustfile)
    root = path if os.path.isdir(path) else os.path.dirname(path)
    while os.path.isfile(os.path.join(root, "__init__.py")) and os.path.dirname(root) != root:
        root = os.path.dirname(root)
    return root


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name in JUNK_DIRS or name.endswith(JUNK_SUFFIXES)


def _walk(root: str) -> Iterator[str]:
    """Regular files below ``root`` (file symlinks resolved), sorted, junk left out."""
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d
            for d in dirs
            if not _is_junk(d)
            and not any(os.path.exists(os.path.join(current, d, m)) for m in ENVIRONMENT_MARKERS)
        )
        for name in sorted(files):
            path = os.path.join(current, name)
            if not _is_junk(name) and os.path.isfile(path):
                yield path


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def pack(source: Source) -> Bundle:
    """Read and compress the tree; BundleTooBig before reading anything when it is over the cap."""
    locustfiles = [os.path.abspath(p) for p in source.locustfiles]
    roots = {tree_root(p) for p in locustfiles}
    root = roots.pop() if len(roots) == 1 else os.path.commonpath([*roots])
    cwd = os.path.abspath(source.cwd)
    anchor = cwd if _within(root, cwd) else root
    workdir = os.path.relpath(cwd, anchor) if _within(cwd, anchor) else "."

    what = f"The locustfile directory {root}"
    paths, total = [], 0
    # a locustfile always goes, even one named like junk; the walk stops at the cap (a
    # locustfile in the home directory must not mean reading all of it)
    extra = [p for p in locustfiles if os.path.isfile(p)]
    sizes: dict[str, int] = {}
    for path in itertools.chain(extra, (p for p in _walk(root) if p not in extra)):
        try:
            sizes[path] = os.stat(path).st_size
        except OSError:
            continue  # gone since the walk saw it
        paths.append(path)
        total += sizes[path]
        if total > source.max_bytes:
            # which files to move: the user's next question
            largest = sorted(sizes, key=lambda p: -sizes[p])[:3]
            named = ", ".join(f"{os.path.relpath(p, root)} {size_text(sizes[p])}" for p in largest)
            _check_size(total, len(paths), source.max_bytes, what, f"; largest: {named}")
        _check_size(total, len(paths), source.max_bytes, what)

    entries = []
    size = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                content = f.read(source.max_bytes - size + 1)
            mode = os.stat(path).st_mode
        except OSError as e:
            raise BundleError(f"Cannot ship {path}: {e.strerror}") from None
        size += len(content)
        # a file that grew since the stat (a log being written) still counts
        _check_size(size, len(paths), source.max_bytes, what)
        entries.append([os.path.relpath(path, anchor), bool(mode & stat.S_IXUSR), content])
    payload = {
        "format": FORMAT,
        "workdir": workdir,
        "locustfiles": [os.path.relpath(p, anchor) for p in locustfiles],
        "files": entries,
    }
    data = zlib.compress(msgpack.packb(payload, use_bin_type=True), 6)
    return Bundle(data, hashlib.sha256(data).hexdigest(), len(entries), size, root)


def _check_size(size: int, files: int, max_bytes: int, what: str, detail: str = "") -> None:
    if size > max_bytes:
        raise BundleTooBig(
            f"{what} holds more than {size_text(max_bytes)} of files (counted {size_text(size)} "
            f"in {files} files{detail}), the cap for workers started with -f -: move large "
            "files elsewhere or raise --bundle-max-mb"
        )
    if files > MAX_FILES:
        raise BundleTooBig(
            f"{what} holds {files} files, more than the {MAX_FILES} lcore ships to workers "
            "started with -f -: move them elsewhere"
        )


# --- fetching (worker) --------------------------------------------------------------------


class Download:
    """Reassembles the chunks; ``next_offset`` is the one to ask for. Chunks that do not
    continue it (late duplicates) are ignored."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._reset()

    def _reset(self) -> None:
        self.next_offset = 0
        self.total: int | None = None
        self.digest = ""
        self._parts: list[bytes] = []

    def add(self, digest: str, total: int, offset: int, data: bytes, error: str = "") -> bool:
        """One chunk; True once complete. Raises BundleError for the master's refusal."""
        if error:
            raise BundleError(error)
        if self.total is None:
            # zlib may grow incompressible data a little; the exact cap is checked on extraction
            if total > self.max_bytes + self.max_bytes // 100 + _COMPRESSED_OVERHEAD_BYTES:
                raise BundleTooBig(
                    f"The master's locustfile bundle is {size_text(total)}, more than this "
                    f"worker's cap of {size_text(self.max_bytes)} (--bundle-max-mb)"
                )
            self.total, self.digest = total, digest
        elif (total, digest) != (self.total, self.digest):
            # the master restarted with other files in the middle: start again
            self._reset()
            return False
        if offset != self.next_offset or not data and offset < total:
            return False
        self._parts.append(data)
        self.next_offset += len(data)
        return self.next_offset >= total

    @property
    def data(self) -> bytes:
        data = b"".join(self._parts)
        if hashlib.sha256(data).hexdigest() != self.digest:
            raise BundleError("The locustfile bundle from the master is corrupt (digest mismatch)")
        return data


def _safe_relpath(value: object) -> str:
    if not isinstance(value, str) or not value or "\x00" in value or os.path.isabs(value):
        raise BundleError(f"The locustfile bundle holds an unsafe path: {str(value)[:80]!r}")
    parts = value.split("/") if os.sep == "/" else value.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise BundleError(f"The locustfile bundle holds an unsafe path: {value[:80]!r}")
    return os.path.join(*parts)


def _parents(path: str) -> list[str]:
    out = []
    while path:
        path = os.path.dirname(path)
        out.append(path)
    return out


def unpack(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Contents:
    """Bytes -> the checked payload (bounded decompression: a bomb stops at the cap)."""
    decompressor = zlib.decompressobj()
    try:
        raw = decompressor.decompress(data, max_bytes + _OVERHEAD_BYTES)
    except zlib.error:
        raise BundleError("The locustfile bundle from the master is not valid (zlib)") from None
    if decompressor.unconsumed_tail:
        raise BundleTooBig(
            f"The master's locustfile bundle unpacks to more than this worker's cap of "
            f"{size_text(max_bytes)} (--bundle-max-mb)"
        )
    try:
        payload = msgpack.unpackb(raw, raw=False, use_list=True)
    except Exception:  # msgpack raises several unrelated classes for bad input
        raise BundleError("The locustfile bundle from the master is not valid (msgpack)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BundleError("The locustfile bundle from the master has an unknown format")
    files, locustfiles, workdir = (
        payload.get("files"), payload.get("locustfiles"), payload.get("workdir")
    )  # fmt: skip
    if not isinstance(files, list) or not isinstance(locustfiles, list) or not locustfiles:
        raise BundleError("The locustfile bundle from the master has an unknown format")
    if len(files) > MAX_FILES:
        raise BundleTooBig(f"The master's locustfile bundle holds more than {MAX_FILES} files")
    size = 0
    seen = set()
    checked = []
    for entry in files:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[1], bool)
            and isinstance(entry[2], bytes)
        ):
            raise BundleError("The locustfile bundle from the master has an unknown format")
        path = _safe_relpath(entry[0])
        if path in seen:
            raise BundleError(f"The locustfile bundle holds {path!r} twice")
        seen.add(path)
        size += len(entry[2])
        checked.append((path, entry[1], entry[2]))
    _check_size(size, len(checked), max_bytes, "The master's locustfile bundle")
    # "." when the master's -f named the shipped directory itself
    shipped = ["." if p == "." else _safe_relpath(p) for p in locustfiles]
    # each as the master's -f named it: a file, or a directory of them
    folders = {os.path.dirname(p) for p in seen}
    folders |= {f for d in list(folders) for f in _parents(d)}
    clash = seen & folders
    if clash:
        raise BundleError(f"The locustfile bundle holds {sorted(clash)[0]!r} as a file and a directory")
    missing = [p for p in shipped if p not in seen and p not in folders and p != "."]
    if missing:
        raise BundleError(f"The locustfile bundle does not hold its locustfile {missing[0]!r}")
    workdir = "." if workdir == "." else _safe_relpath(workdir)
    return Contents(checked, shipped, workdir)


def extract(data: bytes, directory: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Manifest:
    """Write the bundle's files below ``directory`` (which must exist and be private)."""
    contents = unpack(data, max_bytes)
    directory = os.path.abspath(directory)
    try:
        for path, executable, content in contents.files:
            target = os.path.join(directory, path)
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            # O_EXCL and no symlink following: each path is written once, inside the directory
            fd = os.open(
                target,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                0o700 if executable else 0o600,
            )
            with os.fdopen(fd, "wb") as f:
                f.write(content)
        workdir = os.path.normpath(os.path.join(directory, contents.workdir))
        os.makedirs(workdir, mode=0o700, exist_ok=True)
    except OSError as e:  # a full disk, or a file and a directory of the same name
        raise BundleError(f"Cannot write the locustfile bundle into {directory}: {e}") from None
    return Manifest(
        directory,
        workdir,
        tuple(os.path.normpath(os.path.join(directory, p)) for p in contents.locustfiles),
        len(contents.files),
    )


def describe(bundle: Bundle) -> str:
    return f"{bundle.root}: {bundle.files} files, {size_text(bundle.size)}, digest {bundle.digest[:12]}"

