"""A MongoDB wire-protocol server for the mongodb contrib test: NX-27017 (the nx-27017
package, a server backed by SQLite that pymongo talks to as to mongod), run in memory, that
also counts the commands it handled by name into a JSON file after each one.

    python mongo_server.py PORT COUNTS_FILE WORK_DIR
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
from typing import Any

from nx_27017 import handler, nx_27017


def main() -> None:
    port, counts_file, work_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    counts: collections.Counter[str] = collections.Counter()
    handle = handler.NeoSQLiteHandler.handle_command
    lock = threading.Lock()

    def counted(self: Any, msg: dict[str, Any]) -> Any:
        try:
            return handle(self, msg)
        finally:
            body = next((doc for kind, doc in msg["sections"] if kind == "body"), {})
            with lock:  # the server may handle commands on several threads
                counts[next(iter(body), "?")] += 1
                tmp = counts_file + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(counts, f)
                os.replace(tmp, counts_file)

    handler.NeoSQLiteHandler.handle_command = counted  # type: ignore[method-assign]
    sys.argv = [
        "nx-27017", "--db", "memory", "--host", "127.0.0.1", "--port", port,
        "--pid-file", os.path.join(work_dir, "nx.pid"), "--log-file", os.path.join(work_dir, "nx.log"),
    ]  # fmt: skip
    nx_27017.main()


if __name__ == "__main__":
    main()
