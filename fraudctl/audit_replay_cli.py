"""``fraudctl audit replay``: re-derive decisions from the log alone, with model artifacts by content address."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from nats.js import JetStreamContext
from rich.markup import escape
from rich.table import Table

from fraudctl import caller
from fraudctl.audit_cli import (
    FAILED,
    OK,
    UNAVAILABLE,
    Actor,
    NatsUrl,
    VarDir,
    app,
    out,
    parse_time,
    print_findings,
    run_audit,
)
from fraudctl.procfile import load_plan
from fraudshared.audit.check import AuditInputError
from fraudshared.audit.decision_rules import decision_name

if TYPE_CHECKING:
    from fraudshared.audit.replay import ReplayedDecision

# ---- replay --------------------------------------------------------------------------------------------------


class DirectoryArtifacts:
    """Artifacts from a content-addressed directory as governance stores them: ``<root>/sha256/ab/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def fetch(self, sha256: str) -> bytes:
        from fraudshared.audit.replay_models import ReplayError

        path = self._root / "sha256" / sha256[:2] / sha256
        try:
            return path.read_bytes()
        except OSError:
            raise ReplayError(f"artifact {sha256[:12]}... is not in {self._root}") from None


class GovernanceArtifacts:
    """Artifacts by content address from governance (GetModelArtifact)."""

    def __init__(self, address: str, var_dir: Path) -> None:
        self._address = address
        self._var_dir = var_dir

    def fetch(self, sha256: str) -> bytes:
        import grpc

        from fraud.governance.v1 import governance_service_pb2 as gov
        from fraud.governance.v1 import governance_service_pb2_grpc as gov_grpc
        from fraudshared.audit.replay_models import ReplayError

        options = [("grpc.max_receive_message_length", 64 << 20)]
        try:
            # As the auditor unless --as / FRAUD_CREDENTIAL say otherwise: GetModelArtifact needs a granted role.
            with caller.channel(self._address, self._var_dir, default=caller.READ_ONLY, options=options) as channel:
                request = gov.GetModelArtifactRequest(sha256=sha256)
                return bytes(gov_grpc.GovernanceServiceStub(channel).GetModelArtifact(request, timeout=30).content)
        except grpc.RpcError as exc:
            why = caller.explain_rpc_error(exc)
            raise ReplayError(f"governance at {self._address} did not return {sha256[:12]}...: {why}") from None
        except caller.CredentialError as exc:
            raise ReplayError(f"cannot call governance for artifact {sha256[:12]}...: {exc}") from None


def _artifacts(
    artifact_dir: Path | None, governance: str | None, var_dir: Path
) -> DirectoryArtifacts | GovernanceArtifacts:
    if artifact_dir is not None:
        return DirectoryArtifacts(artifact_dir)
    if governance:
        return GovernanceArtifacts(governance, var_dir)
    plan = load_plan(var_dir)
    if plan is None or "governance" not in plan.components:
        raise AuditInputError(
            "no running governance to fetch model artifacts from: pass --governance or --artifact-dir"
        )
    return GovernanceArtifacts(plan.address("governance"), var_dir)


def _partitions(spec: str) -> set[int] | None:
    if spec.strip() == "all":
        return None
    try:
        found: set[int] = set()
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            found.update(range(int(lo), int(hi or lo) + 1))
        return found
    except ValueError:
        raise AuditInputError(f"--partitions must be 'all' or like '0-3' or '0,2,4', got {spec!r}") from None


@app.command()
def replay(
    ctx: typer.Context,
    transaction: Annotated[str | None, typer.Option("--transaction", help="One transaction id.")] = None,
    from_time: Annotated[str | None, typer.Option("--from", help="Event time from (ISO 8601, inclusive).")] = None,
    to_time: Annotated[str | None, typer.Option("--to", help="Event time to (ISO 8601, inclusive).")] = None,
    partitions: Annotated[
        str, typer.Option(help="Card partitions the features owner held (FRAUD_FEATURES_PARTITIONS).")
    ] = "all",
    governance: Annotated[str | None, typer.Option(help="Governance host:port for artifacts.")] = None,
    artifact_dir: Annotated[Path | None, typer.Option(help="Read artifacts from this directory instead.")] = None,
    nats_url: NatsUrl = None,
    actor: Actor = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Re-derive decisions from the log alone: features, model version, score, thresholds, reason codes."""

    async def body(js: JetStreamContext) -> tuple[int, str]:
        from fraudshared.audit.replay import replay_decisions  # pandas, onnxruntime: only here
        from fraudshared.audit.replay_models import ReplayError

        if (transaction is None) == (from_time is None or to_time is None):
            raise AuditInputError("give --transaction, or --from and --to")
        window = (parse_time(from_time), parse_time(to_time)) if from_time and to_time else None
        source = _artifacts(artifact_dir, governance, var_dir)
        try:
            replay = await replay_decisions(
                js, source, transaction_id=transaction, window=window, partitions=_partitions(partitions)
            )
        except ReplayError as exc:
            return UNAVAILABLE, str(exc)
        results = replay.decisions
        _print_replay(results)
        bad = [r for r in results if not r.ok]
        text = f"replayed {len(results)} decision(s): {len(results) - len(bad)} match, {len(bad)} mismatch"
        text += print_findings(replay.findings)  # conflicts and unreadable events: not decisions, not clean either
        out.print(f"[green]{text}[/]" if replay.ok else f"[red]{text}[/]", highlight=False)
        return (OK if replay.ok else FAILED), text

    run_audit(ctx, nats_url, var_dir, actor, body)


def _print_replay(results: list[ReplayedDecision], limit: int = 50) -> None:
    table = Table("transaction", "recorded", "replayed", "model", "result", title="audit replay")
    shown = [r for r in results if not r.ok][:limit] or results[:limit]
    for r in shown:
        recorded = f"{decision_name(r.recorded.decision)} {r.recorded.score:.6f}"
        replayed = f"{decision_name(r.decision)} " + (f"{r.score:.6f}" if r.score is not None else "-")
        result = "[green]match[/]" if r.ok else "[red]MISMATCH[/]"
        table.add_row(r.transaction_id, recorded, replayed, escape(r.model), result)
    out.print(table)
    if len(results) > len(shown):
        out.print(f"({len(results) - len(shown)} more not shown)")
    for r in results:
        for mismatch in r.mismatches:
            out.print(f"[red]x[/] {r.transaction_id}: {escape(mismatch)}", highlight=False, soft_wrap=True)
