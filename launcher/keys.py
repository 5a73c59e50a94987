"""``lcore keys generate DIR`` and ``lcore keys add-worker DIR NAME``: CURVE key management."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = "usage: lcore keys generate DIR | lcore keys add-worker DIR NAME"


def keys_main(argv: Sequence[str]) -> int:
    from lcore.curve import CurveError, add_worker, generate

    try:
        if len(argv) == 2 and argv[0] == "generate":
            written = generate(argv[1])
            print(f"Wrote a master key pair and a worker key pair to {argv[1]}:")
        elif len(argv) == 3 and argv[0] == "add-worker":
            written = add_worker(argv[1], argv[2])
            print(f"Wrote worker key pair {argv[2]!r} to {argv[1]} and authorized it:")
        else:
            sys.stderr.write(USAGE + "\n")
            return 2
    except (CurveError, OSError) as e:
        sys.stderr.write(f"lcore: error: {e}\n")
        return 1
    for path in written:
        print(f"  {path}")
    print(
        "Start the master with --curve-keys DIR. Give each worker box a directory holding master.key "
        "and that worker's own pair (NAME.key, NAME.key_secret), and start it with --curve-keys."
    )
    return 0
