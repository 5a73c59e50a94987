"""The locustfile bundle for ``-f -`` workers, in memory: what is shipped, where it lands, bounds."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import msgpack
import pytest

from lcore import bundle
from lcore import protocol as p
from lcore.locustfile import digest


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root


def shipped(directory: str) -> set[str]:
    return {
        os.path.relpath(os.path.join(r, f), directory) for r, _, fs in os.walk(directory) for f in fs
    }


PROJECT = {
    "locustfile.py": "from feeder import rows\n",
    "feeder.py": "def rows(): return []\n",
    "data/users.csv": "name\nalice\n",
    "run.sh": "#!/bin/sh\n",
    # junk and secrets: never shipped
    "__pycache__/feeder.cpython-311.pyc": b"\0",
    ".git/config": "[core]\n",
    ".env": "TOKEN=secret\n",
    "keys/worker.key_secret": "secret\n",
    "node_modules/x/index.js": "x\n",
    "myvenv/pyvenv.cfg": "home = /usr\n",
    "myvenv/lib/big.py": "x = 1\n",
    "data/.cache": "x\n",
}
EXPECTED = {"locustfile.py", "feeder.py", "data/users.csv", "run.sh"}


def pack_and_extract(tmp_path: Path, locustfile: Path, cwd: Path, **kw: int) -> bundle.Manifest:
    b = bundle.pack(bundle.Source((str(locustfile),), str(cwd), **kw))
    out = tmp_path / "out"
    out.mkdir()
    return bundle.extract(b.data, str(out))


def test_ships_the_tree_without_junk_and_the_locustfile_digest_still_matches(tmp_path) -> None:
    root = tree(tmp_path / "proj", PROJECT)
    (root / "run.sh").chmod(0o755)
    m = pack_and_extract(tmp_path, root / "locustfile.py", root)
    assert shipped(m.directory) == EXPECTED
    assert m.locustfiles == (os.path.join(m.directory, "locustfile.py"),)
    assert m.workdir == m.directory
    assert digest(m.locustfiles[0]) == digest(str(root / "locustfile.py"))
    assert (Path(m.directory) / "data/users.csv").read_text() == "name\nalice\n"
    assert os.access(Path(m.directory) / "run.sh", os.X_OK)
    assert not os.access(Path(m.directory) / "feeder.py", os.X_OK)
    assert os.stat(Path(m.directory) / "feeder.py").st_mode & 0o077 == 0


def test_packing_is_deterministic(tmp_path) -> None:
    root = tree(tmp_path / "proj", PROJECT)
    source = bundle.Source((str(root / "locustfile.py"),), str(root))
    a, b = bundle.pack(source), bundle.pack(source)
    assert a.data == b.data and a.digest == b.digest
    assert (a.files, a.root) == (len(EXPECTED), str(root))


def test_the_worker_stands_where_the_master_stands(tmp_path) -> None:
    root = tree(tmp_path / "home/proj", {"locustfile.py": "", "sub/users.csv": "x"})
    # master started one level up (lcore -f proj/locustfile.py): paths keep the proj/ prefix
    (tmp_path / "a").mkdir()
    m = pack_and_extract(tmp_path / "a", root / "locustfile.py", tmp_path / "home")
    assert m.locustfiles == (os.path.join(m.directory, "proj/locustfile.py"),)
    assert m.workdir == m.directory
    # master started inside the tree: the worker runs from the same subdirectory
    (tmp_path / "b").mkdir()
    m = pack_and_extract(tmp_path / "b", root / "locustfile.py", root / "sub")
    assert m.workdir == os.path.join(m.directory, "sub")
    # master started elsewhere: the tree itself
    (tmp_path / "c").mkdir()
    m = pack_and_extract(tmp_path / "c", root / "locustfile.py", tmp_path / "elsewhere")
    assert m.workdir == m.directory and shipped(m.directory) == {"locustfile.py", "sub/users.csv"}


def test_a_locustfile_in_a_package_ships_the_package_by_name(tmp_path) -> None:
    base = tree(
        tmp_path / "base",
        {"loadtests/__init__.py": "", "loadtests/api/__init__.py": "", "loadtests/api/lf.py": "", "loadtests/common.py": "", "notes.txt": "n"},
    )
    assert bundle.tree_root(str(base / "loadtests/api/lf.py")) == str(base)
    m = pack_and_extract(tmp_path, base / "loadtests/api/lf.py", base)
    assert shipped(m.directory) == {"loadtests/__init__.py", "loadtests/api/__init__.py", "loadtests/api/lf.py", "loadtests/common.py", "notes.txt"}
    assert m.locustfiles == (os.path.join(m.directory, "loadtests/api/lf.py"),)


def test_a_directory_given_as_locustfile_is_shipped_as_such(tmp_path) -> None:
    root = tree(tmp_path / "suite", {"a.py": "", "b.py": "", "_helpers.py": ""})
    m = pack_and_extract(tmp_path, root, root)
    assert shipped(m.directory) == {"a.py", "b.py", "_helpers.py"}
    assert m.locustfiles == (m.directory,)


def test_too_big_is_refused_with_one_line_naming_the_directory_and_the_option(tmp_path) -> None:
    root = tree(tmp_path / "proj", {"locustfile.py": "", "data/blob.bin": os.urandom(5000)})
    with pytest.raises(bundle.BundleTooBig) as e:
        bundle.pack(bundle.Source((str(root / "locustfile.py"),), str(root), max_bytes=4096))
    message = str(e.value)
    assert "\n" not in message
    assert str(root) in message and "4.0 KB" in message and "--bundle-max-mb" in message
    assert "largest: data/blob.bin 4.9 KB, locustfile.py 0 bytes" in message


def chunks(b: bundle.Bundle) -> list[p.BundleChunk]:
    return [
        p.BundleChunk(b.digest, len(b.data), off, b.chunk(off))
        for off in range(0, len(b.data), bundle.CHUNK_BYTES)
    ]


def test_download_reassembles_chunks_and_ignores_late_duplicates(tmp_path) -> None:
    root = tree(tmp_path / "proj", {"locustfile.py": "", "data.bin": os.urandom(3 * bundle.CHUNK_BYTES)})
    b = bundle.pack(bundle.Source((str(root / "locustfile.py"),), str(root)))
    parts = chunks(b)
    assert len(parts) >= 3
    d = bundle.Download()
    for i, c in enumerate(parts):
        assert not d.add(c.digest, c.total, c.offset, c.data) or i == len(parts) - 1
        if i == 1:  # the answer to a repeated request, arriving late
            assert not d.add(parts[0].digest, parts[0].total, parts[0].offset, parts[0].data)
    assert d.data == b.data
    # every chunk fits a frame, and survives the wire
    for c in parts:
        assert p.decode(p.encode(c, "master"))[0] == c


def test_download_errors_are_one_line_and_final(tmp_path) -> None:
    d = bundle.Download()
    with pytest.raises(bundle.BundleError, match="too big, really"):
        d.add("", 0, 0, b"", "too big, really")
    small = bundle.Download(max_bytes=1024)
    with pytest.raises(bundle.BundleTooBig, match="this worker's cap of 1.0 KB"):
        small.add("x" * 64, 100 * 1024 * 1024, 0, b"")
    d = bundle.Download()
    assert d.add("0" * 64, 3, 0, b"abc")
    with pytest.raises(bundle.BundleError, match="corrupt"):
        _ = d.data


def payload(files: list, locustfiles: list | None = None, workdir: str = ".") -> bytes:
    body = {"format": 1, "workdir": workdir, "locustfiles": locustfiles or ["locustfile.py"], "files": files}
    return zlib.compress(msgpack.packb(body, use_bin_type=True))


@pytest.mark.parametrize(
    "data",
    [
        payload([["../escape.py", False, b""], ["locustfile.py", False, b""]]),
        payload([["/etc/passwd", False, b""], ["locustfile.py", False, b""]]),
        payload([["a/../../x", False, b""], ["locustfile.py", False, b""]]),
        payload([["locustfile.py", False, b""], ["locustfile.py", False, b"again"]]),
        payload([["locustfile.py", False, b""]], workdir="../.."),
        payload([["other.py", False, b""]]),
        payload([["locustfile.py", 1, b""]]),
        payload([["locustfile.py", False, "text, not bytes"]]),
        payload([["locustfile.py", False, b""], ["locustfile.py/x", False, b""]]),
        zlib.compress(msgpack.packb({"format": 2})),
        zlib.compress(b"not msgpack \xc1"),
        b"not zlib",
    ],
)
def test_a_hostile_bundle_is_refused_before_anything_is_written(tmp_path, data) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(bundle.BundleError):
        bundle.extract(data, str(out))
    assert list(out.iterdir()) == []
    assert not (tmp_path / "escape.py").exists()


def test_a_compression_bomb_stops_at_the_workers_cap(tmp_path) -> None:
    bomb = payload([["locustfile.py", False, b"\0" * (40 * 1024 * 1024)]])
    assert len(bomb) < 100 * 1024
    with pytest.raises(bundle.BundleTooBig):
        bundle.unpack(bomb, max_bytes=1024 * 1024)


def test_bundle_messages_are_bounded_at_the_decode_boundary() -> None:
    assert bundle.CHUNK_BYTES <= p.MAX_CHUNK_BYTES
    ok = p.BundleRequest(1, "0.1.0", 5)
    assert p.decode(p.encode(ok, "w"))[0] == ok
    bad_frames = [
        ["bundle_request", "w", [1, "0.1.0", -1]],
        ["bundle_request", "w", [1, "0.1.0", True]],
        ["bundle_request", "w", [1, "v" * 500, 0]],
        ["bundle_request", "w", [1, "0.1.0", 2**62]],
        ["bundle_chunk", "m", ["d", 10, 8, b"abc", ""]],  # past the end
        ["bundle_chunk", "m", ["d", 10, 11, b"", ""]],
        ["bundle_chunk", "m", ["d", 2 * p.MAX_CHUNK_BYTES, 0, b"x" * (p.MAX_CHUNK_BYTES + 1), ""]],
        ["bundle_chunk", "m", ["d", 3, 0, "abc", ""]],  # text, not bytes
        ["bundle_chunk", "m", ["d", 3, 0, b"abc", "e" * 2000]],
    ]
    for frame in bad_frames:
        with pytest.raises(p.ProtocolError):
            p.decode(msgpack.packb(frame, use_bin_type=True))
