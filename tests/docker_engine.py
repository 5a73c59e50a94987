"""A private Docker engine for the container tests, always taken down again.

``dockerd`` runs with its own socket, exec-root and pidfile in a fresh directory under /tmp,
no bridge and no iptables changes: every container uses the host's network, so the machine
gains no interface, rule or route. Its data-root lives in the cache, so images and build
layers (the slow pip layer above all) survive between runs on one machine; nothing else does.

No registry is reachable, so the base image is made here: ``debootstrap`` builds a Debian
bookworm root filesystem with Python, a venv puts ``python`` and ``pip`` on PATH as the
official Python images do, and the host's CA bundle goes in so that ``pip install`` inside
the build reaches the package index the way the host does. ``docker import`` turns it into
an image. deploy/Dockerfile is then built on it, unchanged but for ``BASE_IMAGE``.

The cache, ``$XDG_CACHE_HOME/lcore-test`` (``~/.cache/lcore-test``):
    base-<key>.tar   the root filesystem (key: the recipe below and the CA bundle)
    docker/          the engine's data-root
    engine.lock      held while an engine runs: one at a time on this machine
    engine.json      pid and run directory of the running engine, so that a run killed
                     outright is cleaned up by the next one
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
VENV = "/opt/python"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Bump when the recipe changes: the key of the cached base image.
RECIPE = f"1 {SUITE} {' '.join(PACKAGES)} venv={VENV}"
IMAGE_CONFIG = (
    f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python"]',
)
LOCK_WAIT = 600.0  # another run of the container tests on this machine may hold the engine
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, called after


class EngineUnavailable(Exception):
    """Docker cannot run on this machine; the message says why."""


class _DockerdFailed(EngineUnavailable):
    """dockerd itself exited or did not answer (not: another run holds the engine)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lcore-test"


def missing_prerequisites() -> str | None:
    """Why the engine cannot start here, or None."""
    if os.geteuid() != 0:
        return "dockerd and debootstrap need root"
    for program in ("dockerd", "debootstrap", "docker"):
        if _which(program) is None:
            return f"{program} is not installed (run-tests.sh installs docker.io and debootstrap)"
    if not HOST_CA_BUNDLE.exists():
        return f"no CA bundle at {HOST_CA_BUNDLE}"
    return None


def _which(program: str) -> str | None:
    return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _docker_cli() -> str:
    """The client shipped with dockerd (Debian's docker.io: BuildKit without buildx), else any."""
    dockerd = Path(_which("dockerd") or "/usr/sbin/dockerd")
    for directory in (dockerd.parent, dockerd.parent.parent / "bin"):
        if (directory / "docker").exists():
            return str(directory / "docker")
    return _which("docker") or "docker"


def _die_with_parent() -> None:
    """In the child before exec: its own session, and SIGTERM when the test process dies."""
    os.setsid()
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Engine:
    cache: Path
    run_dir: Path
    cli: str
    process: subprocess.Popen[bytes]
    lock: IO[str]
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The environment of a docker or docker-compose client talking to this engine only."""
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.run_dir / 'docker.sock'}",
            "DOCKER_CONFIG": str(self.run_dir / "client"),
            "DOCKER_BUILDKIT": "1",
        }

    def docker(
        self, *args: str, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: exit {result.returncode}\n{result.stderr}")
        return result

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Remove every container, stop dockerd (then whatever it left), release the engine."""
        try:
            if self.process.poll() is None:
                ids = self.docker("ps", "-aq", check=False).stdout.split()
                if ids:
                    self.docker("rm", "--force", "--volumes", *ids, timeout=120, check=False)
                # old builds of the lcore image: the cache keeps the current one only
                self.docker("image", "prune", "--force", check=False)
        except subprocess.TimeoutExpired:
            pass
        finally:
            _stop_dockerd(self.process)
            _sweep(self.run_dir, self.cache / "docker")
            shutil.rmtree(self.run_dir, ignore_errors=True)
            (self.cache / "engine.json").unlink(missing_ok=True)
            self.lock.close()


def start_engine(cache: Path | None = None) -> Engine:
    """dockerd on its own socket, ready to answer; raises EngineUnavailable if it cannot start.
    A cached data-root that dockerd cannot use (a run killed mid-write) is dropped once."""
    reason = missing_prerequisites()
    if reason:
        raise EngineUnavailable(reason)
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return _start_engine(cache)
    except _DockerdFailed:
        if not (cache / "docker").exists():
            raise
        shutil.rmtree(cache / "docker", ignore_errors=True)
        return _start_engine(cache)


def _start_engine(cache: Path) -> Engine:
    lock = _take_lock(cache / "engine.lock")
    run_dir = None
    try:
        _clean_up_after_a_killed_run(cache)
        # short: containerd's sockets live below it, and a socket path has at most 107 bytes
        run_dir = Path(tempfile.mkdtemp(prefix="lcore-docker-", dir="/tmp"))
        (run_dir / "client").mkdir()
        log = run_dir / "dockerd.log"
        command = [
            _which("dockerd") or "dockerd",
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--data-root", str(cache / "docker"),
            "--exec-root", str(run_dir / "exec"),
            "--pidfile", str(run_dir / "dockerd.pid"),
            "--host", f"unix://{run_dir / 'docker.sock'}",
            "--containerd-namespace", "lcore-test",
            "--containerd-plugins-namespace", "lcore-test-plugins",
        ]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        (cache / "engine.json").write_text(json.dumps({"pid": process.pid, "run_dir": str(run_dir)}))
        engine = Engine(cache, run_dir, _docker_cli(), process, lock, log)
    except BaseException:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        lock.close()
        raise
    started = time.monotonic()
    while True:
        if process.poll() is not None:
            tail = engine.log_tail()
            engine.stop()
            raise _DockerdFailed(f"dockerd exited with {process.returncode}:\n{tail}")
        if engine.docker("version", check=False, timeout=10).returncode == 0:
            break
        if time.monotonic() - started > START_TIMEOUT:
            tail = engine.log_tail()
            engine.stop()
            raise _DockerdFailed(f"dockerd did not answer within {START_TIMEOUT:.0f} s:\n{tail}")
        time.sleep(0.2)
    engine.timings["engine start"] = time.monotonic() - started
    leftovers = engine.docker("ps", "-aq").stdout.split()  # from a run that was killed
    if leftovers:
        engine.docker("rm", "--force", "--volumes", *leftovers, timeout=120, check=False)
    return engine


def _take_lock(path: Path) -> IO[str]:
    lock = open(path, "a")  # noqa: SIM115 - held for the engine's life, closed by Engine.stop
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            if time.monotonic() > deadline:
                lock.close()
                raise EngineUnavailable(f"another test run has held {path} for {LOCK_WAIT:.0f} s") from None
            time.sleep(0.5)


def _clean_up_after_a_killed_run(cache: Path) -> None:
    """The engine a killed run left behind (we hold the lock, so it is not in use)."""
    state_file = cache / "engine.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return
    pid, run_dir = state.get("pid"), Path(state.get("run_dir", "/nonexistent"))
    if isinstance(pid, int) and str(cache / "docker") in _cmdline(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _wait_gone(pid, STOP_TIMEOUT)
    _sweep(run_dir, cache / "docker")
    if run_dir.name.startswith("lcore-docker-"):
        shutil.rmtree(run_dir, ignore_errors=True)
    state_file.unlink(missing_ok=True)


def _stop_dockerd(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # dockerd stops its containerd on the way out
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _sweep(run_dir: Path, data_root: Path) -> None:
    """What outlives dockerd: a containerd or shim still holding its sockets (named by pid),
    and mounts under its directories (dockerd leaves the default netns bind mount)."""
    for pid in _pids():
        if str(run_dir) in _cmdline(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    mounts = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point.startswith((f"{run_dir}/", f"{data_root}/")):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):  # the deepest first
        subprocess.run(["umount", "--lazy", point], capture_output=True, timeout=30)


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- images ------------------------------------------------------------------------------------


def base_image(engine: Engine) -> str:
    """The Debian base image, made once per recipe and CA bundle and then taken from the cache."""
    key = hashlib.sha256(RECIPE.encode() + HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12]
    tag = f"lcore-test-base:{key}"
    if engine.docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    started = time.monotonic()
    tarball = engine.cache / f"base-{key}.tar"
    if not tarball.exists():
        for old in engine.cache.glob("base-*.tar"):
            old.unlink()
        _make_root_filesystem(engine.cache, tarball)
        engine.timings["debootstrap"] = time.monotonic() - started
    changes = [flag for change in IMAGE_CONFIG for flag in ("--change", change)]
    engine.docker("import", *changes, str(tarball), tag, timeout=300)
    engine.timings["base image"] = time.monotonic() - started
    return tag


def _make_root_filesystem(cache: Path, tarball: Path) -> None:
    rootfs = cache / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise EngineUnavailable(f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
        # what an image does not need: downloaded packages, package lists, docs, translations
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
            shutil.rmtree(rootfs / junk, ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        shutil.copy(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        subprocess.run(
            ["chroot", str(rootfs), "python3", "-m", "venv", VENV],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=120)
        partial.rename(tarball)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def build_image(engine: Engine, root: Path, base: str, tag: str = "lcore-test:latest") -> str:
    """deploy/Dockerfile built as a user builds it, on ``base``; pip reaches the index through
    the host's network (the engine has no bridge)."""
    started = time.monotonic()
    result = subprocess.run(
        [engine.cli, "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
         "-f", str(root / "deploy" / "Dockerfile"), "-t", tag, str(root)],
        env=engine.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"docker build failed:\n{result.stdout[-3000:]}{result.stderr[-5000:]}")
    engine.timings["lcore image build"] = time.monotonic() - started
    return tag
