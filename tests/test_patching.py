"""A library that reads select.epoll while it is imported (trio does) stays importable in lcore's
gevent-patched processes, and nothing else sees the unpatched epoll."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from test_engine import free_port, read_stats_csv, write


def fake_trio(root: Path) -> None:
    # the shape of trio's import: its epoll module takes select.epoll as a class attribute
    core = root / "trio" / "_core"
    core.mkdir(parents=True)
    (root / "trio" / "__init__.py").write_text("from ._core._io_epoll import EpollIOManager\n")
    (core / "__init__.py").write_text("")
    (core / "_io_epoll.py").write_text(
        "import select\n\nclass EpollIOManager:\n    factory = select.epoll\n"
    )


def test_patch_all_keeps_epoll_readers_importable(tmp_path) -> None:
    fake_trio(tmp_path)
    script = textwrap.dedent(
        """
        import select
        real = select.epoll
        from lcore.launcher.patching import patch_all
        patch_all()
        assert not hasattr(select, "epoll")
        import trio
        assert trio.EpollIOManager.factory is real
        assert not hasattr(select, "epoll")
        import selectors
        assert "gevent" in selectors.DefaultSelector.__module__
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_locustfile_importing_an_epoll_reader_runs(tmp_path, target, run_lcore) -> None:
    fake_trio(tmp_path)
    lf = write(
        tmp_path,
        """
        import trio
        from locust import HttpUser, task, constant

        class Web(HttpUser):
            wait_time = constant(0.05)

            @task
            def index(self):
                self.client.get("/")
        """,
    )
    prefix = tmp_path / "run"
    proc = run_lcore(
        "-f", str(lf), "-H", target.url, "--headless", "-u", "2", "-r", "10", "-t", "2s",
        "--processes", "2", "--csv", str(prefix), "--master-bind-port", str(free_port()), "--no-web",
        env={"PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert proc.wait(60) == 0, proc.output[-4000:]
    assert "epoll" not in proc.output
    assert int(read_stats_csv(prefix)["/"]["Request Count"]) == target.counts()[("GET", "/")] > 0
