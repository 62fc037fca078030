"""Terraform for identity and access (issue 13): each service's TLS credential and secrets mounted read-only,
tls:// everywhere, the Triton admin key only in governance, Vault roles, the bootstrap Job, NATS users and
and the exec probes over mTLS (run against a real server).
Parsed with python-hcl2 like tests/unit/test_terraform.py, whose helpers these checks share.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from fraudshared.events.streams import default_specs
from fraudshared.grpc_server import ServerSecurity, build_server
from fraudshared.identity import Grants
from fraudshared.nats_server import NatsServer
from fraudshared.secrets import SERVICE_PREFIXES, SERVICE_SECRETS, VAULT_ROOT
from tests.fixtures.identity import DevPki
from tests.unit.test_terraform import DEV, ROOT, SERVICES, TF, containers, labelled, one, parse, service_calls, typed


def test_vault_policies_grant_read_on_exact_paths_only() -> None:
    module = TF / "modules" / "vault-policy"
    variables = labelled(module, "variable")
    defaults = variables["services"]["default"]
    # The module's defaults are the code's ownership table; the dev environment grants no more than that.
    expected = {service: sorted(paths) for service, paths in SERVICE_SECRETS.items() if paths}
    assert {k: sorted(v["read_paths"]) for k, v in defaults.items()} == expected
    (locals_,) = parse(DEV / "main.tf")["locals"]
    for service, spec in locals_["vault_services"].items():
        assert set(spec["read_paths"]) <= set(expected[service]), service
    ((_, _, document),) = typed(module, "data")
    read, manage, destroy = (one(rule["rule"], "content") for rule in document["dynamic"])
    assert read["capabilities"] == ["read"]
    assert read["path"] == "${var.kv_mount}/data/${local.path_prefixes[each.key]}/${rule.value}"
    assert manage["capabilities"] == ["create", "read", "update"]
    assert manage["path"] == "${var.kv_mount}/data/${local.path_prefixes[each.key]}/${rule.value}/*"
    assert destroy["capabilities"] == ["delete"]
    assert destroy["path"] == "${var.kv_mount}/metadata/${local.path_prefixes[each.key]}/${rule.value}/*"
    kinds = {t for t, _, _ in typed(module, "resource")}
    assert {"vault_policy", "vault_approle_auth_backend_role"} <= kinds


def test_vault_secret_paths_are_each_services_own_prefix() -> None:
    module = TF / "modules" / "vault-policy"
    variables = labelled(module, "variable")
    # Every path is relative to <path_root>/<service>: the code's default FRAUD_VAULT_PATH_PREFIX.
    assert variables["path_root"]["default"] == VAULT_ROOT
    (locals_,) = parse(module / "main.tf")["locals"]
    assert locals_["path_prefixes"] == '${{for name, _ in var.services : name => "${var.path_root}/${name}"}}'
    assert {k: sorted(v) for k, v in variables["managed_prefixes"]["default"].items()} == {
        k: sorted(v) for k, v in SERVICE_PREFIXES.items()
    }
    assert "path_prefixes" in labelled(module, "output")


def test_triton_model_management_needs_the_admin_key_from_a_secret() -> None:
    from fraudshared.triton_admin import ADMIN_KEY_HEADER, RESTRICTED_APIS

    module = TF / "modules" / "triton"
    (deployment,) = [b for t, _, b in typed(module, "resource") if t == "kubernetes_deployment_v1"]
    (container,) = containers(one(deployment, "spec", "template", "spec"))
    (locals_,) = parse(module / "main.tf")["locals"]
    # The same APIs and header as the local runtime (fraudshared.triton_server), the key only via env.
    assert locals_["restricted_apis"] == f"{','.join(RESTRICTED_APIS)}:{ADMIN_KEY_HEADER}=$(TRITON_ADMIN_KEY)"
    for flag in ("--grpc-restricted-protocol", "--http-restricted-api"):
        assert f'"{flag}=${{local.restricted_apis}}"' in container["args"]
    (env,) = [e for e in container["env"] if e["name"] == "TRITON_ADMIN_KEY"]
    ref = one(env, "value_from", "secret_key_ref")
    assert (ref["name"], ref["key"]) == ("${local.admin_key_secret_name}", "${local.admin_key_secret_key}")
    (secret,) = [b for t, _, b in typed(module, "resource") if t == "kubernetes_secret_v1"]
    assert "uuid()" in json.dumps(secret["data"]) and one(secret, "lifecycle")["ignore_changes"] == ["data"]
    outputs = labelled(module, "output")
    assert {"admin_key_secret_name", "admin_key_secret_key"} <= set(outputs)


def test_triton_network_policy_admits_only_scoring_and_governance_to_grpc() -> None:
    module = TF / "modules" / "triton"
    (policy,) = [b for t, _, b in typed(module, "resource") if t == "kubernetes_network_policy_v1"]
    spec = one(policy, "spec")
    assert one(spec, "pod_selector")["match_labels"] == "${local.selector_labels}"
    assert spec["policy_types"] == ["Ingress"]
    grpc, metrics = spec["ingress"]
    assert [p["port"] for p in grpc["ports"]] == ["${tostring(local.ports.grpc)}"]
    assert [p["port"] for p in metrics["ports"]] == ["${tostring(local.ports.metrics)}"]
    assert "pod_selector" not in one(metrics, "from")  # scrapers by namespace, no pod reaches gRPC or HTTP
    clients = one(grpc, "from", "pod_selector")
    (expression,) = clients["match_expressions"]
    assert (expression["key"], expression["operator"], expression["values"]) == (
        "app.kubernetes.io/name",
        "In",
        "${var.allowed_clients}",
    )
    assert labelled(module, "variable")["allowed_clients"]["default"] == ["scoring", "governance"]
    # The labels the policy matches are the ones the fraud-service module puts on its pods.
    (service_locals,) = parse(TF / "modules" / "fraud-service" / "main.tf")["locals"]
    assert clients["match_labels"] == {"app.kubernetes.io/part-of": "fraud-platform"}
    assert '"app.kubernetes.io/part-of" = "fraud-platform"' in service_locals["labels"]
    assert service_locals["selector_labels"]["app.kubernetes.io/name"] == "${var.name}"


def test_fraud_service_mounts_its_tls_credential_and_secrets_read_only() -> None:
    module = TF / "modules" / "fraud-service"
    (deployment,) = [b for t, _, b in typed(module, "resource") if t == "kubernetes_deployment_v1"]
    pod = one(deployment, "spec", "template", "spec")
    (container,) = containers(pod)
    (locals_,) = parse(module / "main.tf")["locals"]
    # The variables fraudshared.identity.tls.service_credential_files reads, at the Secret's keys.
    assert locals_["tls_env"] == {
        "FRAUD_TLS_CA_FILE": "${var.tls_mount_path}/ca.crt",
        "FRAUD_${local.service_env}_TLS_CERT_FILE": "${var.tls_mount_path}/tls.crt",
        "FRAUD_${local.service_env}_TLS_KEY_FILE": "${var.tls_mount_path}/tls.key",
    }
    assert "local.tls_env" in locals_["env"]
    assert locals_["base_env"]["FRAUD_SERVICE_NAME"] == "${var.name}"  # fraudshared.secrets: whose secrets
    assert locals_["base_env"]["FRAUD_TRUST_DOMAIN"] == "${var.trust_domain}"
    assert locals_["base_env"]["FRAUD_BIND_HOST"] == "0.0.0.0"  # probes and peers reach the pod IP
    (tls_mount,) = [m for m in container["volume_mount"] if m["name"] == "tls"]
    assert (tls_mount["mount_path"], tls_mount["read_only"]) == ("${var.tls_mount_path}", True)
    (tls_volume,) = [v for v in pod["volume"] if v["name"] == "tls"]
    assert one(tls_volume, "secret") == {
        "secret_name": "${var.tls_secret_name}",
        "default_mode": "0400",
        "optional": False,
    }
    # Generic secret volumes: read-only, files 0400, one volume per entry.
    (mounts,) = [d["volume_mount"] for d in container["dynamic"] if "secret_volumes" in str(d.get("volume_mount"))]
    assert mounts["for_each"] == "${var.secret_volumes}" and one(mounts, "content")["read_only"] is True
    (volumes,) = [
        d["volume"] for d in pod["dynamic"] if "volume" in d and d["volume"]["for_each"] == "${var.secret_volumes}"
    ]
    assert one(volumes, "content", "secret")["default_mode"] == "0400"
    variables = labelled(module, "variable")
    assert "default" not in variables["tls_secret_name"]  # TLS is not optional
    assert variables["secret_volumes"]["default"] == {}
    assert "^tls://" in json.dumps(variables["nats_url"]["validation"])


def test_nats_url_is_tls_everywhere() -> None:
    outputs = labelled(TF / "modules" / "nats", "output")
    assert outputs["client_url"]["value"].startswith("tls://")
    assert outputs["certificate_dns_names"]["value"][3] == "${var.name}.${var.namespace}.svc.${var.cluster_domain}"


def test_dev_gives_each_service_its_own_certificate() -> None:
    calls = service_calls()
    (locals_,) = [b for p in sorted(DEV.glob("*.tf")) for b in parse(p).get("locals", []) if "tls_secret_names" in b]
    assert {s: c["tls_secret_name"] for s, c in calls.items()} == {
        s: f'${{local.tls_secret_names["{s}"]}}' for s in SERVICES
    }
    assert all(c["trust_domain"] == "${var.trust_domain}" for c in calls.values())
    assert all(c["depends_on"] == ["${kubernetes_job_v1.bootstrap}"] for c in calls.values())
    nats = labelled(DEV, "module")["nats"]
    assert (nats["tls_secret_name"], nats["trust_domain"]) == ("${local.nats_tls_secret_name}", "${var.trust_domain}")
    # cert-manager Certificates: the principal's SPIFFE id as URI SAN, clientAuth always, serverAuth with names.
    ((_, _, certificate),) = [(t, n, b) for t, n, b in typed(DEV, "resource") if t == "kubernetes_manifest"]
    spec = certificate["manifest"]["spec"]
    assert spec["uris"] == ["${each.value.uri}"] and spec["secretName"] == "${each.value.secret_name}"
    assert spec["privateKey"]["algorithm"] == "ECDSA"
    assert '"client auth"' in spec["usages"] and '"server auth"' in spec["usages"]
    certificates = locals_["certificates"]
    assert "spiffe://${var.trust_domain}/service/${name}" in certificates
    assert "spiffe://${var.trust_domain}/service/bootstrap" in certificates


def test_dev_mounts_the_triton_admin_key_into_governance_only() -> None:
    calls = service_calls()
    governance = calls["governance"]
    (volume,) = governance["secret_volumes"].values()
    assert volume["secret_name"] == "${module.triton.admin_key_secret_name}"
    mount = volume["mount_path"]
    assert mount == "${local.triton_admin_mount}"
    key_file = governance["env"]["FRAUD_TRITON_ADMIN_KEY_FILE"]
    assert key_file == "${local.triton_admin_mount}/${module.triton.admin_key_secret_key}"
    others = [c for s, c in calls.items() if s != "governance"]
    assert not any("secret_volumes" in c or "FRAUD_TRITON_ADMIN_KEY_FILE" in c.get("env", {}) for c in others)
    assert "admin_key_secret_name" not in json.dumps(others)


def test_dev_vault_roles_are_the_services_that_read_secrets() -> None:
    calls = service_calls()
    (locals_,) = parse(DEV / "main.tf")["locals"]
    readers = {service for service, paths in SERVICE_SECRETS.items() if paths}
    assert set(locals_["vault_services"]) == readers
    for service, call in calls.items():
        assert ("vault_approle_secret_name" in call) == (service in readers), service
        if service in readers:
            assert call["vault_approle_secret_name"] == f'${{local.vault_secret_names["{service}"]}}'


def test_dev_bootstrap_job_creates_streams_as_service_bootstrap() -> None:
    from fraudshared.identity.policy import ROLES

    ((_, _, job),) = [(t, n, b) for t, n, b in typed(DEV, "resource") if t == "kubernetes_job_v1"]
    (container,) = containers(one(job, "spec", "template", "spec"))
    assert container["command"][:3] == ["python", "-c", '${file("${path.module}/bootstrap.py")}']
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FRAUD_NATS_URL"] == "${module.nats.client_url}"
    assert {"FRAUD_TLS_CA_FILE", "FRAUD_BOOTSTRAP_TLS_CERT_FILE", "FRAUD_BOOTSTRAP_TLS_KEY_FILE"} <= set(env)
    script = (DEV / "bootstrap.py").read_text()
    assert 'service_credential_files("bootstrap")' in script and "ensure_streams(js)" in script
    compile(script, "bootstrap.py", "exec")
    # service:bootstrap is the one principal NATS lets create streams.
    from fraudshared.nats_access import NATS_ACCESS

    assert [p for p, g in NATS_ACCESS.items() if g.manages_streams] == ["service:bootstrap"]
    grants = labelled(DEV, "variable")["bootstrap_role_grants"]
    assert f"[{', '.join(ROLES)}]" in json.dumps(grants["validation"]).replace('\\"', "").replace('"', "")


# The nats module's permissions default is generated from fraudshared.nats_access (the table the local
# runtime's nats-server enforces): `.venv/bin/python tests/unit/test_terraform.py` rewrites it.
def _probe_command(kind: str, address: str, service: str) -> list[str]:
    """The fraud-service module's exec probe command for ``kind`` (liveness, readiness), evaluated."""
    (locals_,) = parse(TF / "modules" / "fraud-service" / "main.tf")["locals"]
    joined = re.fullmatch(r'\$\{join\("; ", (\[.*\])\)\}', locals_["probe_script"], re.S)
    assert joined, locals_["probe_script"]
    values = {
        "${local.probe_script}": "; ".join(json.loads(joined.group(1))),
        "${local.probe_address}": address,
        "${var.name}": service,
    }
    return [values.get(arg, arg) for arg in locals_[f"{kind}_probe_command"]]


async def _run(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_exec_probes_check_health_over_mtls_with_the_services_own_certificate(dev_pki: DevPki) -> None:
    env = {**os.environ, **dev_pki.service_env()}
    python = [sys.executable]  # the image's python; this venv's here
    security = ServerSecurity(dev_pki.service_files("scoring"), Grants())
    server, port = await build_server("scoring", [], security=security, ready=False)
    await server.start()
    try:
        address = f"127.0.0.1:{port}"
        live = _probe_command("liveness", address, "scoring")
        ready = _probe_command("readiness", address, "scoring")
        assert live[0] == ready[0] == "python"
        assert (await _run(python + live[1:], env))[0] == 0  # the server runs: alive
        code, output = await _run(python + ready[1:], env)
        assert code != 0 and "not SERVING" in output  # not ready: the readiness probe fails
    finally:
        await server.stop(None)
    code, output = await _run(python + live[1:], env)
    assert code != 0  # nothing listens: the liveness probe fails


async def test_bootstrap_job_script_creates_streams_and_grants_as_service_bootstrap(
    dev_pki: DevPki, tmp_path: Path
) -> None:
    bootstrap = dev_pki.files("service:bootstrap")
    with NatsServer(tmp_path / "jetstream", secure=dev_pki.files("service:nats", server=True)) as nats_server:
        env = {
            **os.environ,
            "FRAUD_NATS_URL": nats_server.url,
            "FRAUD_TLS_CA_FILE": str(bootstrap.ca),
            "FRAUD_BOOTSTRAP_TLS_CERT_FILE": str(bootstrap.cert),
            "FRAUD_BOOTSTRAP_TLS_KEY_FILE": str(bootstrap.key),
        }
        # As the Job runs it: python -c <bootstrap.py> <bootstrap_role_grants as JSON>.
        command = [sys.executable, "-c", (DEV / "bootstrap.py").read_text(), json.dumps({"user:alice": "admin"})]
        code, output = await _run(command, env)
        assert code == 0, output
        assert {f"stream {spec.name}: created" for spec in default_specs()} <= set(output.splitlines())
        assert "user:alice admin: granted" in output
        code, output = await _run(command, env)  # idempotent: a re-run (or a retried pod) changes nothing
        assert code == 0, output
        assert "created" not in output and "user:alice admin: already held" in output
