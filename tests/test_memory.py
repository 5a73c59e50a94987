"""lcore.memory: freed heap pages go back to the system (what a worker does every 10 s)."""

from __future__ import annotations

import platform

from lcore.memory import release_free_memory


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_holes_left_by_a_burst_are_given_back() -> None:
    release_free_memory()
    blocks: list[bytearray | None] = [bytearray(3000) for _ in range(20_000)]  # ~60 MB
    for i in range(len(blocks)):
        if i % 4:
            blocks[i] = None  # holes between live blocks: free() alone keeps them
    before = rss_kib()
    released = release_free_memory()
    after = rss_kib()
    if platform.libc_ver()[0] == "glibc":
        assert released
        assert before - after > 10_000, (before, after)
    else:
        assert not released or after <= before
    del blocks
