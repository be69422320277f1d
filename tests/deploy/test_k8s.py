"""deploy/k8s: every overlay rendered by the real ``kubectl kustomize`` and validated against Kubernetes schemas.

Each of the eight combinations of GPU, PostgreSQL and autoscaling is rendered from a kustomization written
in tmp (base or the gpu overlay, plus the addons), and the named overlays must render the same objects as
their combination. Every object is validated by ``kubernetes-validate`` against the schemas of the newest
Kubernetes release it ships, in strict mode (unknown fields fail). ServiceMonitor is a Prometheus Operator
CRD that kubernetes-validate has no schema for: it is checked against ``SERVICE_MONITOR_SCHEMA`` below, the
subset of monitoring.coreos.com/v1's openAPIV3Schema (prometheus-operator's CRD) that our manifests use,
written here and stricter than the CRD (no other fields allowed). Then the facts that matter are asserted:
probes, init containers running our tools, settings names, Secrets, non-root, the NetworkPolicies, and HPA
metric names against what the gateway's /metrics really exports.

The module skips only when kubectl is absent; kubernetes-validate is required.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from rvc.api.auth import OPEN_PATHS
from rvc.api.metrics import ApiMetrics
from rvc.settings import Settings, load_settings
from tests.conftest import REPO_ROOT
from tests.deploy.schema_check import validate as validate_schema

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (apt-get install kubernetes-client)")

K8S = REPO_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = kubernetes_validate.latest_version()
COMBINATIONS = list(itertools.product((False, True), repeat=3))  # (gpu, postgres, autoscaling)
NAMED_OVERLAYS = {"cpu": (False, False, False), "gpu": (True, False, False), "postgres": (False, True, False),
                  "autoscaling": (False, False, True), "production": (True, True, True)}
GATEWAY_LABELS = {"app.kubernetes.io/name": "voice-service", "app.kubernetes.io/component": "gateway"}
SETTINGS_NAMES = {name.upper() for name in Settings.model_fields}
# Environment variables that are not rvc/settings.py fields, and who reads them.
OTHER_VARIABLES = {
    "HF_TOKEN": "huggingface_hub, in tools/download_all_assets.py",
    "DATABASE_URL": "the storage layer of issue 19 item 2 (rvc/storage)",
    "POSTGRES_USER": "the postgres image", "POSTGRES_DB": "the postgres image",
    "POSTGRES_PASSWORD": "the postgres image", "PGDATA": "the postgres image",
}

_ENDPOINT = {"type": "object", "additionalProperties": False, "required": ["port"], "properties": {
    "port": {"type": "string"}, "path": {"type": "string"},
    "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
    "scrapeTimeout": {"type": "string", "pattern": r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
}}
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                 "properties": {
                     "selector": {"type": "object", "additionalProperties": False, "properties": {
                         "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                     "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT}}},
    },
}


@cache
def render_directory(directory: Path) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of one directory; only deprecation warnings may come on stderr."""
    result = subprocess.run([KUBECTL or "kubectl", "kustomize", str(directory)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    noise = [line for line in result.stderr.splitlines() if line.strip() and "is deprecated" not in line]
    assert noise == [], noise
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(scope="module")
def combination_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kustomize")


def render_combination(root: Path, gpu: bool, postgres: bool, autoscaling: bool) -> tuple[dict[str, Any], ...]:
    """Write the kustomization of one combination under ``root`` and render it."""
    folder = root / f"gpu{int(gpu)}-postgres{int(postgres)}-autoscaling{int(autoscaling)}"
    folder.mkdir(exist_ok=True)
    parts = [K8S / ("overlays/gpu" if gpu else "base")]
    parts += [K8S / "addons/postgres"] * postgres + [K8S / "addons/autoscaling"] * autoscaling
    bases = [os.path.relpath(part, folder) for part in parts]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({"bases": bases}))
    return render_directory(folder)


def by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_specs(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"]["template"] for doc in docs
            if doc["kind"] in ("Deployment", "StatefulSet")}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def check_manifest(doc: dict[str, Any]) -> list[str]:
    if doc["apiVersion"] == "monitoring.coreos.com/v1":
        return validate_schema(doc, SERVICE_MONITOR_SCHEMA)
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc['kind']}/{doc['metadata']['name']} {list(exc.path)}: {exc.message}"]
    return []


@pytest.mark.parametrize(("gpu", "postgres", "autoscaling"), COMBINATIONS,
                         ids=[f"gpu={g}-postgres={p}-autoscaling={a}" for g, p, a in COMBINATIONS])
def test_every_combination_renders_and_validates(combination_dir: Path, gpu: bool, postgres: bool,
                                                 autoscaling: bool) -> None:
    docs = render_combination(combination_dir, gpu, postgres, autoscaling)
    assert [problem for doc in docs for problem in check_manifest(doc)] == []
    assert set(by_kind(docs, "Deployment")) == {"voice-triton", "voice-gateway"}
    assert set(by_kind(docs, "StatefulSet")) == ({"voice-postgres"} if postgres else set())
    assert set(by_kind(docs, "HorizontalPodAutoscaler")) == ({"voice-triton", "voice-gateway"} if autoscaling
                                                             else set())
    assert set(by_kind(docs, "ServiceMonitor")) == ({"voice-triton", "voice-gateway"} if autoscaling else set())
    assert by_kind(docs, "Secret") == {}  # credentials never ship in the manifests
    triton = pod_specs(docs)["voice-triton"]["spec"]
    limits = triton["containers"][0]["resources"]["limits"]
    assert ("nvidia.com/gpu" in limits) is gpu and ("nodeSelector" in triton) is gpu
    assert by_kind(docs, "ConfigMap")["voice-settings"]["data"]["DEVICE"] == ("cuda" if gpu else "cpu")
    for name, template in pod_specs(docs).items():  # kustomize v5 reorders patched list items: guard the order
        initial = [container["name"] for container in template["spec"].get("initContainers", [])]
        assert initial == {"voice-triton": ["download-assets", "prepare-model-repository"],
                           "voice-gateway": ["wait-for-assets"], "voice-postgres": []}[name]


@pytest.mark.parametrize("overlay", sorted(NAMED_OVERLAYS))
def test_named_overlays_are_their_combination(combination_dir: Path, overlay: str) -> None:
    def key(doc: dict[str, Any]) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    rendered = sorted(render_directory(K8S / "overlays" / overlay), key=key)
    assert rendered == sorted(render_combination(combination_dir, *NAMED_OVERLAYS[overlay]), key=key)


def test_the_validators_reject_broken_manifests(combination_dir: Path) -> None:
    docs = render_combination(combination_dir, True, True, True)
    gateway = yaml.safe_load(yaml.safe_dump(by_kind(docs, "Deployment")["voice-gateway"]))
    gateway["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/metrics"
    assert check_manifest(gateway) != []
    monitor = yaml.safe_load(yaml.safe_dump(by_kind(docs, "ServiceMonitor")["voice-gateway"]))
    monitor["spec"]["endpoints"][0]["interval"] = 15
    assert check_manifest(monitor) != []


@pytest.fixture(scope="module")
def everything(combination_dir: Path) -> tuple[dict[str, Any], ...]:
    return render_combination(combination_dir, True, True, True)


def container(docs: tuple[dict[str, Any], ...], workload: str, name: str, *, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    (found,) = [c for c in pod_specs(docs)[workload]["spec"][key] if c["name"] == name]
    return found


def environment(docs: tuple[dict[str, Any], ...], spec: dict[str, Any]) -> dict[str, str]:
    """The plain variables a container sees: its ConfigMaps, then its own ``value`` entries."""
    values: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        values.update(by_kind(docs, "ConfigMap")[source["configMapRef"]["name"]]["data"])
    values.update({item["name"]: item["value"] for item in spec.get("env", []) if "value" in item})
    return values


def expand(argument: str, env: dict[str, str]) -> str:
    for name, value in env.items():
        argument = argument.replace(f"$({name})", value)
    return argument


def test_triton_probes_and_ports(everything: tuple[dict[str, Any], ...]) -> None:
    triton = container(everything, "voice-triton", "triton")
    ports = {port["name"]: port["containerPort"] for port in triton["ports"]}
    defaults = Settings()
    assert ports == {"http": defaults.triton_http_port, "grpc": defaults.triton_grpc_port,
                     "metrics": defaults.triton_metrics_port} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = triton["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # rvc.grpc.serve's --startup-timeout
    settings = load_settings(**{k.lower(): v for k, v in environment(everything, triton).items()})
    assert settings.triton_host == "0.0.0.0" and settings.device == "cuda"
    mounts = {mount["mountPath"]: mount for mount in triton["volumeMounts"]}
    assert mounts["/models"].get("readOnly") is True and "/dev/shm" in mounts
    volumes = {volume["name"]: volume for volume in pod_specs(everything)["voice-triton"]["spec"]["volumes"]}
    assert settings.triton_model_repo.is_relative_to("/workspace/var")  # per pod, prepared by the init container
    assert volumes[mounts["/workspace/var"]["name"]] == {"name": "var", "emptyDir": {}}
    assert str(settings.spark_model_dir).startswith("/models/")


def load_tool(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_triton_init_containers_run_our_provisioning_tools(everything: tuple[dict[str, Any], ...]) -> None:
    download = container(everything, "voice-triton", "download-assets", init=True)
    assert download["command"] == ["python", "/workspace/tools/download_all_assets.py"]
    assert (REPO_ROOT / "tools/download_all_assets.py").is_file()
    load_tool(REPO_ROOT / "tools/download_all_assets.py").parse_args(download["args"])  # its own parser
    prepare = container(everything, "voice-triton", "prepare-model-repository", init=True)
    assert prepare["command"] == ["python", "/workspace/triton/scripts/prepare_repository.py"]
    env = environment(everything, prepare)
    arguments = [expand(argument, env) for argument in prepare["args"]]
    assert arguments == ["--output", "/workspace/var/model_repo", "--model-dir",
                         "/models/pretrained_models/Spark-TTS-0.5B",
                         "--device", "cuda"]
    help_text = subprocess.run([sys.executable, str(REPO_ROOT / "triton/scripts/prepare_repository.py"), "--help"],
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert all(flag in help_text for flag in ("--output", "--model-dir", "--device"))
    settings = load_settings(**{k.lower(): v for k, v in env.items()})
    assert str(settings.triton_model_repo) == arguments[1] and str(settings.spark_model_dir) == arguments[3]
    for init, writes in ((download, "/models"), (prepare, "/workspace/var")):
        assert writes in {mount["mountPath"] for mount in init["volumeMounts"] if not mount.get("readOnly")}


def test_gateway_runs_the_launcher_against_the_triton_service(everything: tuple[dict[str, Any], ...]) -> None:
    gateway = container(everything, "voice-gateway", "gateway")
    assert gateway["command"] == ["bash", "/workspace/scripts/start_services.sh"]
    assert (REPO_ROOT / "scripts/start_services.sh").is_file()
    launch_help = subprocess.run([sys.executable, "-m", "rvc.launch", "--help"], capture_output=True, text=True,
                                 timeout=60, check=True, cwd="/tmp").stdout
    assert all(flag in launch_help for flag in gateway["args"]) and gateway["args"] == ["--no-triton", "--no-download"]
    settings = load_settings(**{k.lower(): v for k, v in environment(everything, gateway).items()})
    triton_service = by_kind(everything, "Service")["voice-triton"]
    assert settings.triton_host == "voice-triton" and triton_service["spec"]["type"] == "ClusterIP"
    assert settings.triton_grpc_port in {port["port"] for port in triton_service["spec"]["ports"]}
    assert settings.api_host == "0.0.0.0" and settings.device == "cpu"
    ports = {port["name"]: port["containerPort"] for port in gateway["ports"]}
    assert ports == {"http": settings.api_port}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert gateway["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert {m["mountPath"]: m.get("readOnly") for m in gateway["volumeMounts"]}["/models"] is True


def test_environment_names_are_real_settings(everything: tuple[dict[str, Any], ...]) -> None:
    for workload, template in pod_specs(everything).items():
        for spec in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            names = set(environment(everything, spec)) | {item["name"] for item in spec.get("env", [])}
            unknown = names - SETTINGS_NAMES - set(OTHER_VARIABLES)
            assert unknown == set(), f"{workload}/{spec['name']}: {sorted(unknown)} are not settings"
    configmap = by_kind(everything, "ConfigMap")["voice-settings"]["data"]
    assert set(configmap) <= SETTINGS_NAMES
    load_settings(**{key.lower(): value for key, value in configmap.items()})  # valid values, not just names


def test_credentials_come_from_secrets(everything: tuple[dict[str, Any], ...]) -> None:
    gateway = container(everything, "voice-gateway", "gateway")
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in gateway["env"] if "valueFrom" in item}
    assert refs["DATABASE_URL"] == {"name": "voice-secrets", "key": "database-url"}  # required: state is shared
    assert refs["API_KEYS"] == {"name": "voice-secrets", "key": "api-keys", "optional": True}
    postgres = container(everything, "voice-postgres", "postgres")
    (password,) = [item for item in postgres["env"] if item["name"] == "POSTGRES_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == {"name": "voice-secrets", "key": "postgres-password"}
    for template in pod_specs(everything).values():
        for spec in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            plain = {item["name"] for item in spec.get("env", []) if "value" in item}
            assert not plain & {"DATABASE_URL", "API_KEYS", "POSTGRES_PASSWORD", "HF_TOKEN"}


def test_every_pod_runs_as_non_root(everything: tuple[dict[str, Any], ...]) -> None:
    for workload, template in pod_specs(everything).items():
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, workload
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for spec in pod["containers"] + pod.get("initContainers", []):
            assert spec["securityContext"]["allowPrivilegeEscalation"] is False, spec["name"]
            assert spec["securityContext"]["capabilities"]["drop"] == ["ALL"], spec["name"]


def test_network_policies_admit_only_gateways(everything: tuple[dict[str, Any], ...]) -> None:
    templates = pod_specs(everything)
    labels = {name: template["metadata"]["labels"] for name, template in templates.items()}
    assert selects(GATEWAY_LABELS, labels["voice-gateway"]) and not selects(GATEWAY_LABELS, labels["voice-triton"])
    policies = by_kind(everything, "NetworkPolicy")
    for workload, inference_ports in (("voice-triton", {8000, 8001}), ("voice-postgres", {5432})):
        policy = policies[workload]["spec"]
        assert [name for name in labels if selects(policy["podSelector"]["matchLabels"], labels[name])] == [workload]
        assert policy["policyTypes"] == ["Ingress"]
        from_gateways = [rule for rule in policy["ingress"] if {p["port"] for p in rule["ports"]} & inference_ports]
        assert len(from_gateways) == 1 and {p["port"] for p in from_gateways[0]["ports"]} == inference_ports
        assert from_gateways[0]["from"] == [{"podSelector": {"matchLabels": GATEWAY_LABELS}}]
    (metrics_rule,) = [rule for rule in policies["voice-triton"]["spec"]["ingress"] if rule not in
                       [r for r in policies["voice-triton"]["spec"]["ingress"] if r["from"][0].get("podSelector")]]
    assert [p["port"] for p in metrics_rule["ports"]] == [8002] and "namespaceSelector" in metrics_rule["from"][0]
    assert all(service["spec"]["type"] == "ClusterIP" for service in by_kind(everything, "Service").values())


def test_services_budgets_and_monitors_select_the_pods(everything: tuple[dict[str, Any], ...]) -> None:
    labels = {name: template["metadata"]["labels"] for name, template in pod_specs(everything).items()}
    services = by_kind(everything, "Service")
    for name, service in services.items():
        assert [pod for pod in labels if selects(service["spec"]["selector"], labels[pod])] == [name]
    for name, budget in by_kind(everything, "PodDisruptionBudget").items():
        assert [pod for pod in labels if selects(budget["spec"]["selector"]["matchLabels"], labels[pod])] == [name]
    for name, monitor in by_kind(everything, "ServiceMonitor").items():
        service = services[name]
        assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        port_names = {port["name"] for port in service["spec"]["ports"]}
        assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
            ({"voice-gateway": "http", "voice-triton": "metrics"}[name], "/metrics")]
        assert monitor["spec"]["endpoints"][0]["port"] in port_names


def exported_metric_names() -> set[str]:
    """What the gateway's /metrics serves, read from the registry it is generated from."""
    names = set()
    for family in ApiMetrics().registry.collect():
        names |= {sample.name for sample in family.samples} | {family.name}
    return names


def adapter_rules() -> list[dict[str, Any]]:
    (configmap,) = yaml.safe_load_all((K8S / "examples/prometheus-adapter-rules.yaml").read_text())
    assert check_manifest(configmap) == []
    return yaml.safe_load(configmap["data"]["config.yaml"])["rules"]


def test_hpa_metrics_are_what_the_gateway_and_the_adapter_publish(everything: tuple[dict[str, Any], ...]) -> None:
    hpas = by_kind(everything, "HorizontalPodAutoscaler")
    deployments = by_kind(everything, "Deployment")
    metric_names = {}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert name in deployments and hpa["spec"]["minReplicas"] >= 1
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"
        metric_names[name] = metric["pods"]["metric"]["name"]
    assert metric_names["voice-gateway"] == "voice_api_requests_in_flight"
    assert metric_names["voice-gateway"] in exported_metric_names()
    published = {rule["name"]["as"]: rule for rule in adapter_rules()}
    assert set(metric_names.values()) <= set(published)
    queue_rule = published[metric_names["voice-triton"]]
    query = queue_rule["metricsQuery"]
    assert query.index("nv_inference_queue_duration_us") < query.index("/") < query.index("nv_inference_request_success")
    gateway_rule = published["voice_api_requests_in_flight"]
    assert gateway_rule["seriesQuery"].startswith("voice_api_requests_in_flight{")
    gateway_env = environment(everything, container(everything, "voice-gateway", "gateway"))
    target = float(hpas["voice-gateway"]["spec"]["metrics"][0]["pods"]["target"]["averageValue"])
    assert target == load_settings(rvc_workers=gateway_env["RVC_WORKERS"]).rvc_workers  # capacity: one per worker


def test_gateway_probes_are_open_routes_of_the_api(everything: tuple[dict[str, Any], ...]) -> None:
    """The probes send no API key: their paths must be routes of the app and open without one."""
    from rvc.api.app import create_app

    gateway = container(everything, "voice-gateway", "gateway")
    paths = {gateway[probe]["httpGet"]["path"] for probe in ("readinessProbe", "livenessProbe", "startupProbe")}
    routes = set(create_app(load_settings(api_keys="a-key")).openapi()["paths"])
    assert paths == {"/health/ready", "/health/live"} and paths <= routes and paths <= OPEN_PATHS


def test_gateway_waits_for_the_assets_it_reads(everything: tuple[dict[str, Any], ...], tmp_path: Path) -> None:
    """The wait-for-assets init container's script, run for real: it returns once the volume holds the files."""
    wait = container(everything, "voice-gateway", "wait-for-assets", init=True)
    assert wait["command"][:2] == ["python", "-c"]
    env = environment(everything, wait)
    settings = load_settings(**{key.lower(): value for key, value in env.items()})
    assert str(settings.weights_dir).startswith("/models/") and str(settings.assets_dir).startswith("/models/")
    moved = {"WEIGHTS_DIR": tmp_path / "weights", "ASSETS_DIR": tmp_path / "assets",
             "SPARK_MODEL_DIR": tmp_path / "pretrained_models/Spark-TTS-0.5B"}
    for path in (moved["SPARK_MODEL_DIR"] / "config.yaml", moved["WEIGHTS_DIR"] / settings.rvc_model,
                 moved["ASSETS_DIR"] / "hubert/hubert_base.pt", moved["ASSETS_DIR"] / "rmvpe/rmvpe.pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"present")
    run_env = {**os.environ, **env, **{key: str(value) for key, value in moved.items()}}
    result = subprocess.run([sys.executable, *wait["command"][1:]], env=run_env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and "waiting" not in result.stdout, result.stderr
