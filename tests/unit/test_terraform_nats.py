"""The NATS module's users and permissions are the platform's own table (fraudshared.nats_access), generated.

Regenerate infra/terraform/modules/nats/permissions.tf after changing the table:
``.venv/bin/python tests/unit/test_terraform_nats.py``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.test_terraform import TF, labelled, parse

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
        "# Generated from fraudshared.nats_access.NATS_ACCESS by `.venv/bin/python tests/unit/test_terraform_nats.py`;",
        "# tests/unit/test_terraform_nats.py fails when the two differ. Edit the table there, then regenerate.",
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


if __name__ == "__main__":
    NATS_PERMISSIONS_TF.write_text(render_nats_permissions_tf())
    print(f"wrote {NATS_PERMISSIONS_TF}")
