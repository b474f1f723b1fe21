"""deploy/, checked without a container runtime (this machine has none; no docker, hadolint or
kubeconform here): the files parse, images are pinned, every variable they set is one the code
(or the Temporal SDK, or the Claude CLI) reads, the image installs what the README's setup
installs and nothing else, shutdown deadlines outlast the worker's grace period, the compose
file's search attributes are the code's, and its services start in a sane order."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.envconfig import ClientConfig

from autopilot.infra import search_attributes
from tests.code_env_names import ROOT, names_read

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
WORKER_SERVICE = "worker"

# Variables read by the Temporal SDK's environment configuration, which
# autopilot/infra/temporal_connection.py connects through (ClientConfig): documented at
# https://docs.temporal.io/references/client-environment-configuration
TEMPORAL_SDK_VARIABLES = {
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
}
# The model credentials the Claude Code CLI reads (https://docs.anthropic.com/en/docs/claude-code/
# settings, "Environment variables"; `claude setup-token` for the OAuth one); the worker's
# egress proxy holds them (autopilot/agent/egress.py, CREDENTIALS) and the agent never sees them.
CLAUDE_CLI_VARIABLES = {"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"}
SECRET_NAME = re.compile(r"_KEY$|TOKEN|SECRET|PASSWORD|PWD")
# After the grace period the worker still hands running agents over (heartbeats, cancellation,
# the egress proxy closing): the deadline for the whole stop must leave room for it.
HANDOVER_MARGIN_S = 30


def _yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def _documents(path: Path) -> list[Any]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def _compose() -> dict[str, Any]:
    (document,) = _documents(COMPOSE)
    assert isinstance(document, dict)
    return document


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def _k8s_objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in _documents(path)]


def _k8s(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in _k8s_objects() if obj.get("kind") == kind]


def _worker_deployment() -> dict[str, Any]:
    (deployment,) = _k8s("Deployment")
    return deployment


def _worker_container() -> dict[str, Any]:
    (container,) = _worker_deployment()["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _env_file(path: Path, *, commented: bool = True) -> dict[str, str]:
    """NAME=value lines of an env file; with `commented`, also `# NAME=value` suggestions."""
    prefix = r"(?:#\s*)?" if commented else ""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(prefix + r"([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "deploy/Dockerfile ends inside a continued line"
    return instructions


def _dockerfile_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword, rest in _dockerfile():
        if keyword == "ENV":
            found |= dict(token.split("=", 1) for token in shlex.split(rest))
    return found


def _unit_environment(unit: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            found |= dict(token.split("=", 1) for token in shlex.split(line[len("Environment=") :]))
    return found


def _duration_s(raw: str) -> float:
    """A compose duration ("180s", "3m", "1m30s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", raw)
    assert parts and "".join(n + u for n, u in parts) == raw, f"not a duration: {raw!r}"
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _millicores(raw: str) -> int:
    return int(raw[:-1]) if raw.endswith("m") else int(float(raw) * 1000)


def _mebibytes(raw: str) -> int:
    units = {"Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"(\d+)(Mi|Gi)", raw)
    assert match, f"write memory in Mi or Gi: {raw!r}"
    return int(match.group(1)) * units[match.group(2)]


def _project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


# ------------------------------------------------------------------------------------------------
# Every file parses
# ------------------------------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = _yaml_files()
    assert {COMPOSE, K8S / "deployment.yaml", K8S / "kustomization.yaml"} <= set(files)
    for path in files:
        assert _documents(path), f"{path} holds no YAML document"


def test_every_kubernetes_object_is_whole() -> None:
    objects = _k8s_objects()
    assert {obj["kind"] for obj in objects} >= {"Deployment", "ConfigMap", "Secret"}
    for obj in objects:
        if obj.get("kind") == "Kustomization":
            continue
        assert obj.get("apiVersion") and obj.get("metadata", {}).get("name"), obj


# ------------------------------------------------------------------------------------------------
# Images pinned by exact version
# ------------------------------------------------------------------------------------------------


def _image_references() -> Iterator[tuple[str, str]]:
    """(where, image) for every image the deploy files name."""
    for name, service in _services().items():
        if "image" in service:
            yield f"compose.yaml service {name}", service["image"]

    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    yield where, value
                else:
                    yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    for obj in _k8s_objects():
        yield from walk(obj, f"k8s {obj.get('kind')} {obj.get('metadata', {}).get('name')}")
    for keyword, rest in _dockerfile():
        if keyword == "FROM":
            yield "Dockerfile FROM", rest.split()[0]


def _pinned(image: str) -> bool:
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return False  # no tag at all (a registry port is not one)
    # PostgreSQL's own versions have two parts (16.13); everything else here has three.
    parts = 2 if repository.rsplit("/", 1)[-1] == "postgres" else 3
    return re.fullmatch(r"\d+" + r"\.\d+" * (parts - 1) + r"(-[a-z0-9.-]+)?", tag) is not None


def test_the_pin_rule_refuses_floating_tags() -> None:
    for floating in ("postgres:16", "python:3.11-slim", "temporalio/ui:latest", "ubuntu", "a:1.2"):
        assert not _pinned(floating), floating
    for exact in ("postgres:16.13", "python:3.11.14-slim-bookworm", "temporalio/server:1.30.1"):
        assert _pinned(exact), exact


def test_every_image_is_pinned_by_exact_version() -> None:
    images = list(_image_references())
    assert any(where == "Dockerfile FROM" for where, _ in images)
    assert any(where.startswith("k8s Deployment") for where, _ in images)
    loose = [f"{where}: {image}" for where, image in images if not _pinned(image)]
    assert not loose, "images without an exact version:\n" + "\n".join(loose)


def test_the_worker_image_is_tagged_with_the_project_version() -> None:
    tag = f"cc3-autopilot-worker:{_project_version()}"
    assert _services()[WORKER_SERVICE]["image"] == tag
    assert _worker_container()["image"].endswith(tag)
    assert tag in DOCKERFILE.read_text()  # the build command its header gives


# ------------------------------------------------------------------------------------------------
# Every variable set is one that is read
# ------------------------------------------------------------------------------------------------


def test_the_code_scan_finds_the_variables_the_code_reads() -> None:
    names = names_read()
    # Read directly, through a helper given the environment, and through a constant.
    assert {"AUTOPILOT_STATE_DIR", "AUTOPILOT_TEMPORAL_PORT", "MALLOC_ARENA_MAX"} <= names
    assert {"AUTOPILOT_TASK_QUEUE", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"} <= names
    # An upper-case constant that is no variable, and one the code only sets for a child.
    assert "MAX_TURNS" not in names and "TERM" not in names


def _variables_set() -> dict[str, set[str]]:
    """Every variable the deploy files give a worker (or a starter run beside it): name -> where."""
    found: dict[str, set[str]] = {}

    def add(names: object, where: str) -> None:
        for name in names:  # type: ignore[attr-defined]
            found.setdefault(str(name), set()).add(where)

    for name, service in _services().items():
        if "build" in service or str(service.get("image", "")).startswith("cc3-autopilot-worker"):
            add(_environment(service), f"compose.yaml {name}")
            for entry in service.get("env_file", []):
                path = entry["path"] if isinstance(entry, dict) else entry
                add(_env_file(DEPLOY / f"{path}.example"), f"{path}.example")
    add(_dockerfile_env(), "Dockerfile ENV")
    add((env["name"] for env in _worker_container().get("env", [])), "k8s Deployment env")
    for config_map in _k8s("ConfigMap"):
        add(config_map["data"], "k8s ConfigMap")
    for secret in _k8s("Secret"):
        add(secret.get("stringData", {}), "k8s Secret")
    add(_env_file(DEPLOY / "systemd" / "worker.env.example"), "systemd/worker.env.example")
    add(_unit_environment(DEPLOY / "systemd" / "autopilot-worker.service"), "systemd unit")
    return found


def test_every_variable_the_deploy_files_set_is_read_by_the_code() -> None:
    known = names_read() | TEMPORAL_SDK_VARIABLES | CLAUDE_CLI_VARIABLES
    found = _variables_set()
    expected = {"AUTOPILOT_MAX_AGENTS", "AUTOPILOT_GRACEFUL_SHUTDOWN_S", "TEMPORAL_ADDRESS"}
    assert expected <= set(found)
    unread = {name: sorted(where) for name, where in found.items() if name not in known}
    assert not unread, f"set in deploy/ but read by nothing: {unread}"


def test_no_secret_value_is_written_in_the_deploy_files() -> None:
    def placeholder(value: str) -> bool:
        return not value or "REPLACE" in value or "..." in value or value.startswith("${")

    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for line in path.read_text().splitlines():
            match = re.search(r"\b([A-Z][A-Z0-9_]*)\s*[:=]\s*(\S*)", line)
            if match and SECRET_NAME.search(match.group(1)):
                value = match.group(2).strip("\"'")
                assert placeholder(value), f"{path}: {match.group(1)} has a value: {line!r}"
    assert "ANTHROPIC_API_KEY" not in _environment(_services()[WORKER_SERVICE])


# ------------------------------------------------------------------------------------------------
# The image installs what the README's setup installs
# ------------------------------------------------------------------------------------------------


def _dev_setup_requirements() -> tuple[set[str], set[str]]:
    """From ./dev: the commands `setup` requires on the machine, and the packages it installs
    for the sandbox as root."""
    script = (ROOT / "dev").read_text()
    setup = script[script.index("\nsetup() {") :]
    setup = setup[: setup.index("\n}\n")]
    required = set(re.findall(r"command -v (\w+) >/dev/null 2>&1 \|\| die", setup))
    sandbox = re.search(r"apt-get install -y -q ([a-z0-9 -]+?) >/dev/null", script)
    assert required and sandbox
    return required, set(sandbox.group(1).split())


def _apt_packages(command: str) -> set[str]:
    packages: set[str] = set()
    for match in re.finditer(r"apt-get install ([^&;|]+)", command):
        packages |= {token for token in match.group(1).split() if not token.startswith("-")}
    return packages


def test_the_image_runs_the_readme_setup_and_no_install_of_its_own() -> None:
    runs = [rest for keyword, rest in _dockerfile() if keyword == "RUN"]
    setup_runs = [run for run in runs if re.search(r"(^|\s)\./dev setup(\s|$)", run)]
    assert len(setup_runs) == 1, "the image must run `./dev setup`, once"
    # The README says both commands set themselves up with ./dev setup: nothing else may.
    for run in runs:
        assert not re.search(
            r"\bpip3? install|\bnpm (ci|install|i)\b|-m venv\b|\buv (pip|sync|venv)\b|\bpipx\b", run
        ), run
    # What ./dev setup does is done on the whole project, already copied in.
    order = [(keyword, rest) for keyword, rest in _dockerfile() if keyword in ("COPY", "RUN")]
    copy_at = order.index(("COPY", ". ."))
    assert copy_at < order.index(("RUN", setup_runs[0]))
    assert ("WORKDIR", "/opt/cc3-autopilot") in _dockerfile()


def test_the_image_installs_the_readme_prerequisites_and_nothing_else() -> None:
    required, sandbox = _dev_setup_requirements()
    assert required == {"git", "npm"} and sandbox == {"bubblewrap", "socat"}
    installed: set[str] = set()
    for keyword, rest in _dockerfile():
        if keyword == "RUN":
            installed |= _apt_packages(rest)
    # Debian packages by the names ./dev uses; nodejs is what npm runs on.
    assert required | sandbox | {"nodejs"} <= installed
    # Beyond those: certificates for TLS, and tini as PID 1 (it reaps the sandboxes' orphans).
    assert installed - required - sandbox - {"nodejs"} <= {"ca-certificates", "tini"}


def test_the_image_runs_the_worker_as_a_user_of_its_own() -> None:
    users = [rest for keyword, rest in _dockerfile() if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    runs = [rest for keyword, rest in _dockerfile() if keyword == "RUN"]
    assert any(re.search(rf"useradd [^&]*\s{re.escape(users[-1])}(\s|$)", run) for run in runs)
    entry = [rest for keyword, rest in _dockerfile() if keyword in ("ENTRYPOINT", "CMD")]
    assert "worker.py" in " ".join(entry)
    assert _dockerfile_env()["AUTOPILOT_STATE_DIR"] in _services()[WORKER_SERVICE]["volumes"][0]


# ------------------------------------------------------------------------------------------------
# Stopping: every deadline outlasts the worker's grace period
# ------------------------------------------------------------------------------------------------


def test_the_deployment_waits_longer_than_the_workers_graceful_shutdown() -> None:
    env = {item["name"]: item["value"] for item in _worker_container()["env"]}
    grace = float(env["AUTOPILOT_GRACEFUL_SHUTDOWN_S"])
    period = _worker_deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert period >= grace + HANDOVER_MARGIN_S


def test_compose_and_systemd_wait_longer_than_the_workers_graceful_shutdown() -> None:
    worker = _services()[WORKER_SERVICE]
    grace = float(_environment(worker)["AUTOPILOT_GRACEFUL_SHUTDOWN_S"])
    assert _duration_s(worker["stop_grace_period"]) >= grace + HANDOVER_MARGIN_S
    unit = (DEPLOY / "systemd" / "autopilot-worker.service").read_text()
    stop = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)
    assert stop
    env = _env_file(DEPLOY / "systemd" / "worker.env.example", commented=False)
    assert int(stop.group(1)) >= float(env["AUTOPILOT_GRACEFUL_SHUTDOWN_S"]) + HANDOVER_MARGIN_S


def test_the_duration_reader() -> None:
    assert _duration_s("180s") == 180 and _duration_s("3m") == 180 and _duration_s("1m30s") == 90
    with pytest.raises(AssertionError):
        _duration_s("180")


# ------------------------------------------------------------------------------------------------
# Kubernetes: sized by agent, wired to its ConfigMap, Secret and volumes
# ------------------------------------------------------------------------------------------------


def test_the_deployment_is_sized_per_agent_times_max_agents() -> None:
    notes = _worker_deployment()["metadata"]["annotations"]
    env = {item["name"]: item["value"] for item in _worker_container()["env"]}
    agents = int(env["AUTOPILOT_MAX_AGENTS"])
    resources = _worker_container()["resources"]

    def sized(per_agent: str, worker: str, read: Any) -> int:
        return int(agents * read(notes[per_agent]) + read(notes[worker]))

    cpu = sized("cc3-autopilot/per-agent-cpu", "cc3-autopilot/worker-cpu", _millicores)
    memory = sized("cc3-autopilot/per-agent-memory", "cc3-autopilot/worker-memory", _mebibytes)
    limit = sized(
        "cc3-autopilot/per-agent-memory-limit", "cc3-autopilot/worker-memory-limit", _mebibytes
    )
    assert _millicores(resources["requests"]["cpu"]) == cpu
    assert _mebibytes(resources["requests"]["memory"]) == memory
    assert _mebibytes(resources["limits"]["memory"]) == limit
    # The bench: each claude run ~1.5 s CPU of ~2 s wall, a few hundred MB; the worker 85-120 MB.
    assert 500 <= _millicores(notes["cc3-autopilot/per-agent-cpu"]) <= 1000
    assert 256 <= _mebibytes(notes["cc3-autopilot/per-agent-memory"]) <= 1024
    assert _mebibytes(notes["cc3-autopilot/worker-memory"]) >= 120


def test_the_deployment_uses_the_configmap_secret_and_volumes_defined_beside_it() -> None:
    container = _worker_container()
    sources = {
        kind: [ref[kind]["name"] for ref in container["envFrom"] if kind in ref]
        for kind in ("configMapRef", "secretRef")
    }
    assert sources["configMapRef"] == [obj["metadata"]["name"] for obj in _k8s("ConfigMap")]
    assert sources["secretRef"] == [obj["metadata"]["name"] for obj in _k8s("Secret")]
    config = _k8s("ConfigMap")[0]["data"]
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "AUTOPILOT_TASK_QUEUE"} <= set(config)
    assert set(_k8s("Secret")[0]["stringData"]) == {"ANTHROPIC_API_KEY", "TEMPORAL_API_KEY"}
    claims = {obj["metadata"]["name"] for obj in _k8s("PersistentVolumeClaim")}
    volumes = _worker_deployment()["spec"]["template"]["spec"]["volumes"]
    assert {volume["persistentVolumeClaim"]["claimName"] for volume in volumes} == claims
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert _dockerfile_env()["AUTOPILOT_STATE_DIR"] in mounts


def test_kustomize_applies_everything_but_the_secret_template() -> None:
    (kustomization,) = _documents(K8S / "kustomization.yaml")
    resources = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in resources)
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - resources == {"secret.template.yaml"}


def test_the_sandbox_settings_are_there_in_compose_and_kubernetes() -> None:
    options = set(_services()[WORKER_SERVICE]["security_opt"])
    assert options == {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}
    pod = _worker_deployment()["spec"]["template"]["spec"]
    assert pod["hostUsers"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "Unconfined"
    assert pod["securityContext"]["appArmorProfile"]["type"] == "Unconfined"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert _worker_container()["securityContext"]["procMount"] == "Unmasked"


# ------------------------------------------------------------------------------------------------
# Compose: the admin job, the search attributes, the start order
# ------------------------------------------------------------------------------------------------


def _admin_script() -> str:
    command = _services()["temporal-admin"]["command"]
    return "\n".join(command) if isinstance(command, list) else str(command)


def test_the_admin_job_creates_exactly_the_codes_search_attributes() -> None:
    pairs = re.findall(r"search-attribute create .*--name (\w+) --type (\w+)", _admin_script())
    created = dict(pairs)
    assert len(created) == len(pairs), "an attribute is created twice"
    assert created == search_attributes.ATTRIBUTES


def test_the_admin_job_creates_the_namespace_the_workers_use() -> None:
    services = _services()
    namespace = _environment(services["temporal-admin"])["NAMESPACE"]
    assert _environment(services[WORKER_SERVICE])["TEMPORAL_NAMESPACE"] == namespace
    assert 'namespace create --namespace "$$NAMESPACE"' in _admin_script()
    assert 'search-attribute create --namespace "$$NAMESPACE"' in _admin_script()
    # `temporal operator` finds the server through TEMPORAL_ADDRESS, as the workers do.
    assert (
        _environment(services["temporal-admin"])["TEMPORAL_ADDRESS"]
        == _environment(services[WORKER_SERVICE])["TEMPORAL_ADDRESS"]
    )


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def test_compose_starts_in_order_and_the_workers_wait_for_the_admin_job() -> None:
    services = _services()
    assert _depends_on(services[WORKER_SERVICE]) == {
        "temporal-admin": "service_completed_successfully"
    }
    assert _depends_on(services["temporal-admin"]) == {"temporal": "service_healthy"}
    assert _depends_on(services["temporal"]) == {
        "temporal-schema": "service_completed_successfully"
    }
    assert _depends_on(services["temporal-schema"]) == {"postgresql": "service_healthy"}
    for name, service in services.items():
        for needed, condition in _depends_on(service).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            if condition == "service_healthy":
                assert "healthcheck" in services[needed], f"{needed} has no healthcheck"

    def reaches(start: str, seen: frozenset[str]) -> None:
        for needed in _depends_on(services[start]):
            assert needed not in seen, f"dependency cycle through {needed}"
            reaches(needed, seen | {needed})

    for name in services:
        reaches(name, frozenset({name}))


def test_compose_runs_several_workers_that_can_be_scaled() -> None:
    worker = _services()[WORKER_SERVICE]
    assert worker["deploy"]["replicas"] >= 2
    # A fixed name or a host port would stop `--scale worker=N` at one.
    assert "container_name" not in worker and "ports" not in worker
    host, _, port = _environment(worker)["TEMPORAL_ADDRESS"].partition(":")
    assert host in _services() and port == "7233"
    assert _environment(worker)["AUTOPILOT_TASK_QUEUE"]
    named = set(_compose()["volumes"])
    assert {mount.split(":")[0] for mount in worker["volumes"]} <= named


def test_the_web_ui_and_the_frontend_listen_on_loopback_only() -> None:
    for name in ("temporal", "temporal-ui"):
        for mapping in _services()[name].get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping}"


# ------------------------------------------------------------------------------------------------
# temporal.toml.example, read by the SDK itself
# ------------------------------------------------------------------------------------------------


def test_the_temporal_toml_example_has_a_local_and_a_cloud_profile() -> None:
    path = DEPLOY / "temporal.toml.example"
    config = ClientConfig.load(config_source=path, config_file_strict=True)
    assert set(config.profiles) == {"default", "cloud"}
    local = config.profiles["default"].to_client_connect_config()
    assert f"{local['target_host']}:7233" in _services()["temporal"]["ports"]
    assert local.get("namespace") == _environment(_services()[WORKER_SERVICE])["TEMPORAL_NAMESPACE"]
    assert not local.get("api_key") and not local.get("tls")
    cloud = config.profiles["cloud"].to_client_connect_config()
    assert cloud.get("api_key") and cloud.get("tls") is True


def test_temporal_profile_and_config_file_select_a_profile_and_the_environment_wins() -> None:
    path = str(DEPLOY / "temporal.toml.example")
    chosen = ClientConfig.load_client_connect_config(
        override_env_vars={"TEMPORAL_CONFIG_FILE": path, "TEMPORAL_PROFILE": "cloud"}
    )
    assert chosen["target_host"].endswith(".api.temporal.io:7233")
    overridden = ClientConfig.load_client_connect_config(
        override_env_vars={"TEMPORAL_CONFIG_FILE": path, "TEMPORAL_ADDRESS": "elsewhere:7233"}
    )
    assert overridden["target_host"] == "elsewhere:7233"
