"""Structure of infra/terraform, parsed with python-hcl2 (no terraform binary or provider registry here).

Checks the module conventions (STYLE.md: standard module structure, typed and described variables, pinned
versions, single resources named ``this``), the dev environment's wiring, and that every environment
variable handed to a service is one that service reads (docs/config.md, docs/governance.md, README.md).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
DEV = TF / "envs" / "dev"
MODULES = ("nats", "triton", "fraud-service", "postgres", "vault-policy")
SERVICES = ("ingest", "features", "scoring", "governance", "monitor")
TF_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
MODULE_META_ARGS = {"source", "version", "providers", "count", "for_each", "depends_on"}

# Environment variables each service reads, from docs/config.md (common + secrets port), docs/runtime.md
# (peer addresses), README.md's service table and docs/governance.md. "{S}" is the service's env name.
COMMON_ENV = {
    "FRAUD_NATS_URL",
    "FRAUD_VAR_DIR",
    "FRAUD_LOG_LEVEL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "FRAUD_{S}_GRPC_PORT",
    "FRAUD_{S}_METRICS_PORT",
    "FRAUD_BIND_HOST",
    "FRAUD_TLS_CA_FILE",
    "FRAUD_{S}_TLS_CERT_FILE",
    "FRAUD_{S}_TLS_KEY_FILE",
    "FRAUD_TRUST_DOMAIN",
}
SECRETS_ENV = {
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "VAULT_KV_MOUNT",
    "VAULT_APPROLE_MOUNT",
    "FRAUD_VAULT_PATH_PREFIX",
    "FRAUD_SERVICE_NAME",
    "FRAUD_SECRETS_CACHE_TTL_S",
    "FRAUD_SECRETS_FILE",
}
SERVICE_ENV = {
    "ingest": {"FRAUD_FEATURES_ADDR", "FRAUD_SCORING_ADDR", "FRAUD_INGEST_DOWNSTREAM_TIMEOUT_S"},
    "features": set(),
    "scoring": {"FRAUD_TRITON_GRPC_URL", "FRAUD_SCORING_INFERENCE_TIMEOUT_S", "FRAUD_GOVERNANCE_ADDR"},
    "governance": {
        "FRAUD_GOVERNANCE_DATABASE_URL",
        "FRAUD_GOVERNANCE_DATABASE_SCHEMA",
        "FRAUD_ARTIFACT_DIR",
        "FRAUD_TRITON_GRPC_URL",
        "FRAUD_TRITON_MODEL_REPO",
        "FRAUD_TRITON_BACKEND",
        "FRAUD_TRITON_ADMIN_KEY_FILE",
    },
    "monitor": set(),
}
WORKLOAD_KINDS = {"kubernetes_deployment_v1", "kubernetes_stateful_set_v1"}
SECRET_VARIABLE = re.compile(r"(^|_)(password|secret_id|token|hmac_key)$")

_OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(), serialization_options=_OPTIONS)


def labelled(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Single-label blocks (variable, output, module) of every .tf file in a directory, by label."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for entry in parse(path).get(kind, []):
            found.update(entry)
    return found


def typed(directory: Path, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource or data block in a directory."""
    return [
        (rtype, name, body)
        for path in sorted(directory.glob("*.tf"))
        for entry in parse(path).get(kind, [])
        for rtype, named in entry.items()
        for name, body in named.items()
    ]


def one(body: dict[str, Any], *path: str) -> Any:
    """Follows nested single blocks (each parsed as a one-element list)."""
    for key in path:
        value = body[key]
        body = value[0] if isinstance(value, list) else value
    return body


def module_dir(call: dict[str, Any]) -> Path:
    return (DEV / call["source"]).resolve()


def env_name(service: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", service.upper()).strip("_")


def allowed_env(service: str) -> set[str]:
    names = COMMON_ENV | SECRETS_ENV | SERVICE_ENV[service]
    return {n.replace("{S}", env_name(service)) for n in names}


ALL_DIRS = [TF / "modules" / m for m in MODULES] + [DEV]
DIR_IDS = [*MODULES, "envs/dev"]


def test_modules_follow_the_standard_structure() -> None:
    assert sorted(p.name for p in (TF / "modules").iterdir() if p.is_dir()) == sorted(MODULES)
    for directory in ALL_DIRS:
        for name in TF_FILES:
            assert (directory / name).is_file(), f"{directory}/{name} missing"
    for module in MODULES:
        assert (TF / "modules" / module / "README.md").is_file()
    assert (DEV / "terraform.tfvars.example").is_file()
    assert (TF / "README.md").is_file()


@pytest.mark.parametrize("module", MODULES)
def test_module_readme_lists_inputs_and_outputs(module: str) -> None:
    directory = TF / "modules" / module
    readme = (directory / "README.md").read_text()
    names = [*labelled(directory, "variable"), *labelled(directory, "output")]
    assert [n for n in names if not re.search(rf"\b{n}\b", readme)] == []


@pytest.mark.parametrize("directory", ALL_DIRS, ids=DIR_IDS)
def test_variables_have_type_and_description(directory: Path) -> None:
    variables = labelled(directory, "variable")
    assert variables
    for name, body in variables.items():
        assert "type" in body, f"variable {name} has no type"
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"
        if SECRET_VARIABLE.search(name):
            assert body.get("sensitive") is True and body.get("default") is None, f"{name}: secret default"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=DIR_IDS)
def test_outputs_have_descriptions(directory: Path) -> None:
    outputs = labelled(directory, "output")
    assert outputs
    for name, body in outputs.items():
        assert str(body.get("description", "")).strip(), f"output {name} has no description"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=DIR_IDS)
def test_versions_pin_terraform_and_every_provider(directory: Path) -> None:
    (terraform,) = parse(directory / "versions.tf")["terraform"]
    assert re.fullmatch(r">= ?1\.([6-9]|\d\d)(\.\d+)?", terraform["required_version"])
    providers: dict[str, Any] = {}
    for entry in terraform["required_providers"]:
        providers.update(entry)
    for name, spec in providers.items():
        assert spec["source"] == f"hashicorp/{name}"
        assert re.fullmatch(r"~> \d+\.\d+(\.\d+)?", spec["version"]), f"{name}: {spec['version']}"
    used = {rtype.split("_")[0] for kind in ("resource", "data") for rtype, _, _ in typed(directory, kind)}
    for call in labelled(directory, "module").values():
        (versions,) = parse(module_dir(call) / "versions.tf")["terraform"]
        used |= {p for entry in versions["required_providers"] for p in entry}
    assert used <= set(providers), f"undeclared providers: {used - set(providers)}"


@pytest.mark.parametrize("module", MODULES)
def test_single_resources_are_named_this(module: str) -> None:
    for kind in ("resource", "data"):
        blocks = typed(TF / "modules" / module, kind)
        for rtype in {t for t, _, _ in blocks}:
            names = [n for t, n, _ in blocks if t == rtype]
            if len(names) == 1:
                assert names == ["this"], f"{module}: {kind} {rtype} is named {names[0]}"


@pytest.mark.parametrize("directory", ALL_DIRS, ids=DIR_IDS)
def test_references_resolve(directory: Path) -> None:
    # Descriptions are prose (they may show example references), not expressions.
    text = json.dumps([parse(p) for p in sorted(directory.glob("*.tf"))])
    text = re.sub(r'"description": "(?:[^"\\]|\\.)*"', "", text)
    variables = labelled(directory, "variable")
    local_names = {k for p in directory.glob("*.tf") for block in parse(p).get("locals", []) for k in block}
    assert set(re.findall(r"\bvar\.(\w+)", text)) <= set(variables)
    assert set(re.findall(r"\blocal\.(\w+)", text)) <= local_names
    calls = labelled(directory, "module")
    for name, output in set(re.findall(r"\bmodule\.(\w+)\.(\w+)", text)):
        assert output in labelled(module_dir(calls[name]), "output"), f"module.{name}.{output}"


def test_dev_instantiates_every_module_and_every_service() -> None:
    calls = labelled(DEV, "module")
    assert {module_dir(c).name for c in calls.values()} == set(MODULES)
    services = [c["name"] for c in calls.values() if module_dir(c).name == "fraud-service"]
    assert sorted(services) == sorted(SERVICES)


@pytest.mark.parametrize("call_name", sorted(labelled(DEV, "module")))
def test_dev_passes_declared_and_required_variables(call_name: str) -> None:
    call = labelled(DEV, "module")[call_name]
    variables = labelled(module_dir(call), "variable")
    arguments = set(call) - MODULE_META_ARGS
    assert arguments <= set(variables), f"undeclared: {arguments - set(variables)}"
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= arguments, f"required but not passed: {required - arguments}"


def service_calls() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in labelled(DEV, "module").values() if module_dir(c).name == "fraud-service"}


def module_env_names(service: str) -> set[str]:
    """Env names the fraud-service module itself sets (literal keys of its env locals)."""
    (locals_,) = parse(TF / "modules" / "fraud-service" / "main.tf")["locals"]
    names = set()
    for key in ("base_env", "tls_env", "optional_env", "vault_secret_env"):
        names |= {k.replace("${local.service_env}", env_name(service)) for k in locals_[key]}
    return names


@pytest.mark.parametrize("service", SERVICES)
def test_service_env_names_are_ones_the_service_reads(service: str) -> None:
    call = service_calls()[service]
    names = module_env_names(service) | set(call.get("env", {})) | set(call.get("secret_env", {}))
    assert names <= allowed_env(service), f"{service} does not read {names - allowed_env(service)}"
    s = env_name(service)
    assert {f"FRAUD_{s}_GRPC_PORT", f"FRAUD_{s}_METRICS_PORT", "FRAUD_NATS_URL"} <= names


def test_services_are_wired_to_each_other() -> None:
    calls = service_calls()
    assert all(c["nats_url"] == "${module.nats.client_url}" for c in calls.values())
    assert calls["ingest"]["env"]["FRAUD_FEATURES_ADDR"] == "${module.features.address}"
    assert calls["ingest"]["env"]["FRAUD_SCORING_ADDR"] == "${module.scoring.address}"
    for service in ("scoring", "governance"):
        assert calls[service]["env"]["FRAUD_TRITON_GRPC_URL"] == "${module.triton.grpc_address}"
    governance = calls["governance"]
    assert governance["env"]["FRAUD_TRITON_BACKEND"] == "onnxruntime_onnx"
    assert governance["env"]["FRAUD_TRITON_MODEL_REPO"] == "${module.triton.model_repository_path}"
    assert "FRAUD_GOVERNANCE_DATABASE_URL" in governance["secret_env"]
    assert governance["volumes"]["models"]["claim_name"] == "${module.triton.model_repository_claim_name}"
    for service in ("ingest", "governance"):
        assert "vault_approle_secret_name" in calls[service]


def test_env_names_are_documented_and_read_by_the_code() -> None:
    docs = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    code = "\n".join(p.read_text() for d in ("fraudshared", "services") for p in sorted((ROOT / d).rglob("*.py")))
    literal = {n for n in COMMON_ENV | SECRETS_ENV | set().union(*SERVICE_ENV.values()) if "{S}" not in n}
    assert {n for n in literal if n not in docs} == set()
    assert {n for n in literal if f'"{n}"' not in code} == set()


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec["container"])


@pytest.mark.parametrize("module", ["triton", "fraud-service", "postgres"])
def test_workloads_are_hardened_and_limited(module: str) -> None:
    resources = typed(TF / "modules" / module, "resource")
    workloads = [b for t, _, b in resources if t in WORKLOAD_KINDS]
    assert workloads
    for workload in workloads:
        pod = one(workload, "spec", "template", "spec")
        assert one(pod, "security_context")["run_as_non_root"] is True
        assert pod["automount_service_account_token"] is False
        for container in containers(pod):
            security = one(container, "security_context")
            assert security["allow_privilege_escalation"] is False
            assert security["read_only_root_filesystem"] in (True, "${var.read_only_root_filesystem}")
            assert one(security, "capabilities")["drop"] == ["ALL"]
            assert one(container, "resources")["limits"]


def test_fraud_service_probes_grpc_health_and_is_scraped() -> None:
    main = TF / "modules" / "fraud-service" / "main.tf"
    (deployment,) = [b for t, _, b in typed(main.parent, "resource") if t == "kubernetes_deployment_v1"]
    (container,) = containers(one(deployment, "spec", "template", "spec"))
    (locals_,) = parse(main)["locals"]
    # mTLS on the gRPC port: the probes call grpc.health.v1 inside the container with the service's own
    # certificate (the kubelet's native gRPC probe cannot present one).
    for probe, command in (
        ("startup_probe", "liveness_probe_command"),
        ("readiness_probe", "readiness_probe_command"),
        ("liveness_probe", "liveness_probe_command"),
    ):
        assert one(container, probe, "exec")["command"] == f"${{local.{command}}}"
    assert locals_["probe_address"] == "127.0.0.1:${var.grpc_port}"
    script = locals_["probe_script"]
    assert "wait_until_serving" in script and "own_credential" in script
    assert locals_["liveness_probe_command"][-2:] == ["liveness", "${var.name}"]
    assert locals_["readiness_probe_command"][-2:] == ["", "${var.name}"]
    assert {p["name"] for p in container["port"]} == {"grpc", "metrics"}
    assert '"prometheus.io/port" = tostring(var.metrics_port)' in locals_["pod_annotations"]
    kinds = {t for t, _, _ in typed(main.parent, "resource")}
    assert {"kubernetes_service_v1", "kubernetes_service_account_v1", "kubernetes_pod_disruption_budget_v1"} <= kinds
    assert "kubernetes_horizontal_pod_autoscaler_v2" in kinds


def test_triton_serves_the_shared_model_repository_explicitly() -> None:
    (deployment,) = [b for t, _, b in typed(TF / "modules" / "triton", "resource") if t == "kubernetes_deployment_v1"]
    (container,) = containers(one(deployment, "spec", "template", "spec"))
    assert "--model-control-mode=explicit" in container["args"]
    assert "--model-repository=${local.model_repository_path}" in container["args"]
    assert one(container, "readiness_probe", "http_get")["path"] == "/v2/health/ready"
    assert {p["container_port"] for p in container["port"]} == {
        "${local.ports.http}",
        "${local.ports.grpc}",
        "${local.ports.metrics}",
    }
    image = labelled(TF / "modules" / "triton", "variable")["image"]
    assert image["default"] == "nvcr.io/nvidia/tritonserver:24.08-py3"


def test_nats_is_the_official_chart_pinned_with_three_replicas() -> None:
    ((_, _, release),) = typed(TF / "modules" / "nats", "resource")
    assert release["repository"] == "https://nats-io.github.io/k8s/helm/charts/"
    assert release["chart"] == "nats"
    assert release["version"] == "${var.chart_version}"
    variables = labelled(TF / "modules" / "nats", "variable")
    assert variables["replicas"]["default"] == 3
    assert re.fullmatch(r"\d+\.\d+\.\d+", variables["chart_version"]["default"])
