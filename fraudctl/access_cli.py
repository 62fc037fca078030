"""``fraudctl access ...``: grant, revoke and list roles, over governance's AccessService.

Every call is made as the authenticated caller (the global ``fraudctl --as NAME``, FRAUD_CREDENTIAL or
FRAUD_TOKEN_FILE: `fraudctl.caller`); that principal is the ``granted_by`` the access log records. Granting
and revoking need the admin role, listing admin or auditor (the auth interceptor checks), and an admin may not
grant itself a role. A gRPC error prints one line (status, details, what to do) and exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraud.access.v1 import access_service_pb2 as pb
from fraud.access.v1 import access_service_pb2_grpc as pb_grpc
from fraudctl import caller

app = typer.Typer(no_args_is_help=True, help="Roles: grant, revoke, list (admin; listing also auditor).")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

Governance = Annotated[
    str | None,
    typer.Option("--governance", envvar="FRAUD_GOVERNANCE_ADDR", help="host:port; default: the running runtime's."),
]
VarDir = Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state (`fraudctl up`).")]
Reason = Annotated[str, typer.Option("--reason", help="Why, e.g. a ticket reference (recorded with the event).")]


_friendly = caller.one_line_errors


def _address(governance: str | None, var_dir: Path) -> str:
    return caller.service_address("governance", governance, var_dir)


@contextmanager
def _stub(governance: str | None, var_dir: Path) -> Iterator[pb_grpc.AccessServiceStub]:
    with caller.channel(_address(governance, var_dir), var_dir) as channel:
        yield pb_grpc.AccessServiceStub(channel)


def _principal(value: str) -> str:
    """``user:alice`` as given; a bare name means a user (``alice`` -> ``user:alice``)."""
    return value if ":" in value else f"user:{value}"


@app.command()
@_friendly
def grant(
    principal: Annotated[str, typer.Argument(help="user:<name> or service:<name> (a bare name is a user).")],
    role: Annotated[str, typer.Argument(help="scorer, labeler, analyst, model-owner, approver, auditor, ...")],
    reason: Reason,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Grant ROLE to PRINCIPAL as the caller (an admin; not to itself)."""
    with _stub(governance, var_dir) as stub:
        response = stub.GrantRole(pb.GrantRoleRequest(principal=_principal(principal), role=role, reason=reason))
    done = "granted" if response.changed else "already held (nothing recorded)"
    out.print(f"{_principal(principal)} {role}: {done}", highlight=False)


@app.command()
@_friendly
def revoke(
    principal: Annotated[str, typer.Argument(help="user:<name> or service:<name> (a bare name is a user).")],
    role: Annotated[str, typer.Argument(help="The role to take away.")],
    reason: Reason,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Revoke ROLE from PRINCIPAL as the caller (an admin)."""
    with _stub(governance, var_dir) as stub:
        response = stub.RevokeRole(pb.RevokeRoleRequest(principal=_principal(principal), role=role, reason=reason))
    done = "revoked" if response.changed else "not held (nothing recorded)"
    out.print(f"{_principal(principal)} {role}: {done}", highlight=False)


@app.command(name="list")
@_friendly
def list_grants(
    principal: Annotated[str | None, typer.Argument(help="Only this principal's roles.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Who holds which role, granted by whom and when (an admin or auditor)."""
    with _stub(governance, var_dir) as stub:
        grants = stub.ListGrants(pb.ListGrantsRequest(principal=_principal(principal) if principal else "")).grants
    rows = [
        {
            "principal": g.principal,
            "role": g.role,
            "granted_by": g.granted_by,
            "granted_at": g.granted_at.ToDatetime(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "reason": g.reason,
        }
        for g in grants
    ]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))  # plain: no rich wrapping of JSON lines
        return
    table = Table("principal", "role", "granted by", "granted at", "reason", title="role grants")
    for row in rows:
        table.add_row(*(escape(str(row[k])) for k in ("principal", "role", "granted_by", "granted_at", "reason")))
    out.print(table)
    out.print(f"{len(rows)} grant(s)", highlight=False)
