"""The layers are true: read the imports (AST) and fail when one points the wrong way."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "core"

# shared by master and workers, and by the exporters: neither event loop, no sockets
PURE = [
    "protocol", "stats", "stats_delta", "histogram", "dispatch", "spent", "user_config", "bundle",
    "user_lifecycle", "unreported", "arrivals", "fd_limit",
]
EVENT_LOOPS = ("gevent", "asyncio", "zmq", "aiohttp")


def imported(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (function-level imports too), absolute."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside lcore's core package
                base = "lcore" + ("." + node.module if node.module else "")
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_event_loop(module: str) -> None:
    bad = sorted(n for n in imported(CORE / f"{module}.py") if n.split(".")[0] in EVENT_LOOPS)
    assert not bad, f"lcore.{module} imports {bad}"


def test_core_imports_neither_launcher_nor_exporters() -> None:
    offenders = {}
    for path in sorted(CORE.rglob("*.py")):
        bad = sorted(
            n for n in imported(path) if n.startswith(("lcore.launcher", "lcore.exporters"))
        )
        if bad:
            offenders[str(path.relative_to(CORE))] = bad
    assert not offenders, offenders


def test_the_master_does_not_load_the_http_client_or_the_user_modules() -> None:
    code = textwrap.dedent(
        """
        import sys
        import lcore.master, lcore.launcher.master_main
        heavy = [m for m in ("lcore.users", "lcore.http", "lcore._http", "lcore.user_pool", "geventhttpclient")
                 if m in sys.modules]
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_http_client_is_one_private_package_behind_lcore_http() -> None:
    assert not sorted(p.name for p in CORE.glob("http_*.py")), "HTTP modules outside lcore._http"
    assert sorted(p.stem for p in (CORE / "_http").glob("*.py")) == [
        "__init__", "body", "errors", "fields", "response", "session", "wire",
    ]  # fmt: skip
    offenders = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE)
        if rel.parts[0] == "_http" or rel == Path("http.py"):
            continue
        bad = sorted(n for n in imported(path) if n == "lcore._http" or n.startswith("lcore._http."))
        if bad:
            offenders[str(rel)] = bad
    assert not offenders, f"import lcore.http, not its private package: {offenders}"
