"""Terraform for identity and access (issue 13): each service's TLS credential and secrets mounted read-only,
tls:// everywhere, the Triton admin key only in governance, Vault roles, the bootstrap Job, NATS users and
permissions generated from fraudshared.nats_access, and the exec probes over mTLS (run against a real server).
Parsed with python-hcl2 like tests/unit/test_terraform.py, whose helpers these checks share.

Regenerate infra/terraform/modules/nats/permissions.tf after changing the table:
``.venv/bin/python tests/unit/test_terraform_identity.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from fraudshared.events.streams import default_specs
from fraudshared.grpc_server import ServerSecurity, build_server
from fraudshared.identity import Grants
from fraudshared.nats_server import NatsServer
from fraudshared.secrets import SERVICE_SECRETS
from tests.fixtures.identity import DevPki
from tests.unit.test_terraform import DEV, ROOT, SERVICES, TF, containers, labelled, one, parse, service_calls, typed


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
NATS_PERMISSIONS_TF = TF / "modules" / "nats" / "permissions.tf"
PRINCIPAL_RE = "^(user|service):[a-z0-9][a-z0-9._@-]{0,127}$"  # fraudshared.identity.principal's name rule


def nats_permissions_table() -> dict[str, Any]:
    from fraudshared.nats_access import NATS_ACCESS, permissions

    return {principal: permissions(grant) for principal, grant in NATS_ACCESS.items()}


def _hcl_list(name: str, items: list[str], indent: str) -> list[str]:
    return [f"{indent}{name} = [", *(f"{indent}  {json.dumps(i)}," for i in items), f"{indent}]"]


def render_nats_permissions_tf() -> str:
    """permissions.tf: the variable whose default is `nats_permissions_table`, formatted as terraform fmt does."""
    lines = [
        "# Generated from fraudshared.nats_access.NATS_ACCESS by"
        " `.venv/bin/python tests/unit/test_terraform_identity.py`;",
        "# tests/unit/test_terraform_identity.py fails when the two differ. Edit the table there, then regenerate.",
        'variable "permissions" {',
        "  type = map(object({",
        "    publish = object({",
        "      allow = list(string)",
        "      deny  = optional(list(string), [])",
        "    })",
        "    subscribe = object({",
        "      allow = list(string)",
        "      deny  = optional(list(string), [])",
        "    })",
        "    allow_responses = optional(object({",
        "      max = number",
        "    }))",
        "  }))",
        '  description = "NATS permissions per principal (service:<name> or user:<name>): publish and subscribe'
        " allow/deny subject lists, and allow_responses (replies to requests it serves). The default is the"
        " platform's table,"
        ' fraudshared.nats_access.NATS_ACCESS (docs/nats-access.md); a principal not listed cannot connect."',
        "  validation {",
        f'    condition     = alltrue([for p in keys(var.permissions) : can(regex("{PRINCIPAL_RE}", p))])',
        '    error_message = "permissions keys must be principal ids such as service:ingest or user:alice."',
        "  }",
        "  default = {",
    ]
    for principal, block in nats_permissions_table().items():
        lines.append(f"    {json.dumps(principal)} = {{")
        for direction in ("publish", "subscribe"):
            lines.append(f"      {direction} = {{")
            lines += _hcl_list("allow", block[direction]["allow"], "        ")
            if block[direction].get("deny"):
                lines += _hcl_list("deny", block[direction]["deny"], "        ")
            lines.append("      }")
        if "allow_responses" in block:
            lines.append(f"      allow_responses = {{ max = {block['allow_responses']['max']} }}")
        lines.append("    }")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def test_nats_permissions_default_is_the_code_table() -> None:
    variables = labelled(TF / "modules" / "nats", "variable")
    hint = "regenerate with .venv/bin/python tests/unit/test_terraform.py"
    assert variables["permissions"]["default"] == nats_permissions_table(), hint


def test_nats_requires_mapped_client_certificates() -> None:
    module = TF / "modules" / "nats"
    (locals_,) = parse(module / "main.tf")["locals"]
    tls = locals_["values"]["config"]["nats"]["tls"]
    assert (tls["enabled"], tls["secretName"], tls["ca"]) == (True, "${var.tls_secret_name}", "ca.crt")
    assert tls["merge"]["verify_and_map"] is True
    assert locals_["values"]["config"]["merge"] == {"authorization": {"users": "${local.users}"}}
    users = json.dumps(locals_["users"])
    # The user name is the SPIFFE id fraudshared.identity.Principal.spiffe_id gives the principal.
    assert 'spiffe://${var.trust_domain}/${replace(principal, \\":\\", \\"/\\")}' in users
    assert "var.permissions" in users
    from fraudshared.identity.principal import Principal

    assert Principal.parse("service:ingest").spiffe_id("fraud.local") == "spiffe://fraud.local/service/ingest"


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


if __name__ == "__main__":
    NATS_PERMISSIONS_TF.write_text(render_nats_permissions_tf())
    print(f"wrote {NATS_PERMISSIONS_TF}")
