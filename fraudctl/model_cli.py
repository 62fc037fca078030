"""``fraudctl model ...``: the model registry from the command line, over the governance gRPC service.

The service's address is ``--governance host:port`` or, by default, the governance component of the runtime
that ``fraudctl up`` started under ``--var-dir``. Every call is made as the authenticated caller (the global
``fraudctl --as NAME``, FRAUD_CREDENTIAL or FRAUD_TOKEN_FILE: `fraudctl.caller`), and that principal is the
registrant, approver or deployer the registry records: there are no actor options. A gRPC error prints one
line (status code, details and what to do) and exits 1, without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudctl import caller
from fraudctl.model_messages import (
    ModelCliError,
    card_lineage,
    card_metadata,
    format_when,
    read_training_run,
    register_request,
    role_name,
    stage_name,
)
from fraudctl.model_views import parse_time, registry_line, summary_table

app = typer.Typer(no_args_is_help=True, help="Model registry: register, approve, deploy, promote, roll back, ask.")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
MAX_MESSAGE = 64 * 1024 * 1024
ROLES = {"champion": events_pb.DEPLOYMENT_ROLE_CHAMPION, "canary": events_pb.DEPLOYMENT_ROLE_CANARY}
ROLES["shadow"] = events_pb.DEPLOYMENT_ROLE_SHADOW

Governance = Annotated[
    str | None,
    typer.Option("--governance", envvar="FRAUD_GOVERNANCE_ADDR", help="host:port; default: the running runtime's."),
]
VarDir = Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state (`fraudctl up`).")]


def _no_actor_option(value: str | None) -> str | None:
    """The old actor options (--approver, --registered-by...) are refused: the registry records the caller."""
    if value is not None:
        raise typer.BadParameter("the actor is the authenticated caller: use `fraudctl --as NAME ...`")
    return value


def _actor_option(name: str) -> Any:
    return typer.Option(name, hidden=True, callback=_no_actor_option, help="Removed: the actor is the caller.")


OldActor = str | None


_friendly = caller.one_line_errors


def governance_address(governance: str | None, var_dir: Path) -> str:
    """``--governance`` if given, else the address of the runtime's governance service under ``var_dir``."""
    return caller.service_address("governance", governance, var_dir)


@contextmanager
def _stub(governance: str | None, var_dir: Path) -> Iterator[pb_grpc.GovernanceServiceStub]:
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    with caller.channel(governance_address(governance, var_dir), var_dir, options=options) as channel:
        yield pb_grpc.GovernanceServiceStub(channel)


# ---- commands ---------------------------------------------------------------------------------------------


@app.command()
@_friendly
def register(
    from_dir: Annotated[Path, typer.Option("--from", help="A training run: models/<dir> from `fraudctl train`.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: metadata.json's).")] = None,
    version: Annotated[str | None, typer.Option(help="Semantic version (default: metadata.json's).")] = None,
    registered_by: Annotated[OldActor, _actor_option("--registered-by")] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Register a trained model (ONNX + explainer + lineage); governance validates it on the way in."""
    metadata, onnx_model, explainer = read_training_run(from_dir)
    request = register_request(metadata, onnx_model, explainer, name=name, version=version)
    with _stub(governance, var_dir) as stub:
        model = stub.RegisterModel(request).model
    out.print(summary_table(model, f"registered {model.model_name} {model.version}"))


@app.command()
@_friendly
def approve(
    name: str,
    version: str,
    comment: Annotated[str, typer.Option(help="Justification.")] = "",
    approver: Annotated[OldActor, _actor_option("--approver")] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Sign off a validated version as the caller (four eyes: two distinct approvers, neither the registrant)."""
    with _stub(governance, var_dir) as stub:
        request = pb.ApproveModelRequest(model_name=name, version=version, comment=comment)
        model = stub.ApproveModel(request).model
    out.print(f"{name} {version}: {stage_name(model.stage)}, approved by {', '.join(model.approvers)}")


@app.command()
@_friendly
def deploy(
    name: str,
    version: str,
    role: Annotated[str, typer.Option(help="champion, canary or shadow.")] = "champion",
    canary_percent: Annotated[int, typer.Option(min=0, max=100, help="Traffic share of a canary (1-100).")] = 0,
    deployed_by: Annotated[OldActor, _actor_option("--deployed-by")] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Load an approved version into Triton, warm it, and serve it in a role."""
    if role not in ROLES:
        raise ModelCliError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    with _stub(governance, var_dir) as stub:
        request = pb.DeployModelRequest(
            model_name=name, version=version, role=ROLES[role], canary_percent=canary_percent
        )
        response = stub.DeployModel(request)
    since = datetime.now(UTC) - response.model.registered_at.ToDatetime(UTC)
    out.print(
        f"{name} {version} serves as {role} in Triton ({response.model.triton_model_name}): "
        f"loaded and warm in {response.load_ms:.0f} ms; registered -> serving {since.total_seconds():.1f} s"
    )


@app.command()
@_friendly
def promote(
    name: str,
    version: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    promoted_by: Annotated[OldActor, _actor_option("--promoted-by")] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Make a deployed canary or shadow the champion (the old champion retires and is unloaded)."""
    with _stub(governance, var_dir) as stub:
        request = pb.PromoteModelRequest(model_name=name, version=version, reason=reason)
        model = stub.PromoteModel(request).model
    out.print(f"{name} {model.version} is the champion")


@app.command()
@_friendly
def rollback(
    name: str,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    rolled_back_by: Annotated[OldActor, _actor_option("--rolled-back-by")] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Restore the previous champion (reloaded and warmed first); the current one retires."""
    with _stub(governance, var_dir) as stub:
        request = pb.RollbackModelRequest(model_name=name, reason=reason)
        model = stub.RollbackModel(request).model
    out.print(f"{name} rolled back: {model.version} is the champion again")


@app.command("list")
@_friendly
def list_(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """List registered versions with stage, role, approvals and headline metrics."""
    with _stub(governance, var_dir) as stub:
        models = stub.ListModels(pb.ListModelsRequest(model_name=name or "")).models
    table = Table("model", "version", "stage", "role", "approvers", "AUC", "AP", "registered")
    for m in models:
        role = role_name(m.role) + (f" {m.canary_percent}%" if m.canary_percent else "")
        metric = [f"{m.metrics[k]:.3f}" if k in m.metrics else "-" for k in ("auc_roc", "average_precision")]
        table.add_row(
            m.model_name,
            m.version,
            stage_name(m.stage),
            role,
            ", ".join(m.approvers),
            *metric,
            format_when(m.registered_at),
        )
    out.print(table if models else "no model versions registered")


@app.command()
@_friendly
def show(name: str, version: str, governance: Governance = None, var_dir: VarDir = Path("var")) -> None:
    """Full lineage of a version: data, code, params, metrics, checks, approvals, deployments, promotions."""
    with _stub(governance, var_dir) as stub:
        found = stub.GetModel(pb.GetModelRequest(model_name=name, version=version))
    out.print(summary_table(found.model, f"{name} {version}"))
    approvals = Table("approver", "at", "comment", title="approvals", title_justify="left")
    for a in found.approvals:
        approvals.add_row(a.approver, format_when(a.approved_at), escape(a.comment))
    history = Table("seq", "event", "role", "by", "at", "detail", title="history", title_justify="left")
    for h in found.history:
        role = role_name(h.role) + (f" {h.canary_percent}%" if h.canary_percent else "")
        detail = " ".join(x for x in (h.other_version and f"({h.other_version})", h.reason) if x)
        history.add_row(str(h.stream_seq), h.kind, role, h.actor, format_when(h.at), escape(detail))
    out.print(approvals, history)
    histograms = len(found.reference_profile.histograms)
    out.print(f"reference profile: {histograms} histograms over {found.reference_profile.rows} rows")


@app.command("live-at")
@_friendly
def live_at(
    name: str,
    time: Annotated[str, typer.Argument(help="ISO 8601 time (no offset = UTC), or 'now'.")],
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Which version was champion at a time."""
    moment = parse_time(time)
    request = pb.GetLiveModelRequest(model_name=name)
    request.at.FromDatetime(moment)
    with _stub(governance, var_dir) as stub:
        model = stub.GetLiveModel(request).model
    when = moment.isoformat(timespec="seconds")
    out.print(f"{name} at {when}: champion {model.version}" if model.version else f"{name} at {when}: no champion")


@app.command()
@_friendly
def decided(transaction_id: str, governance: Governance = None, var_dir: VarDir = Path("var")) -> None:
    """Which model version decided a transaction (from its recorded PredictionMade)."""
    with _stub(governance, var_dir) as stub:
        found = stub.GetDecisionModel(pb.GetDecisionModelRequest(transaction_id=transaction_id))
    table = Table(show_header=False, title=f"transaction {transaction_id}", title_justify="left")
    ref = found.model_ref
    rows = [
        ("decision", common.Decision.Name(found.decision).removeprefix("DECISION_")),
        ("score", f"{found.score:.4f}"),
        ("model", f"{ref.name} {ref.version} ({role_name(found.role) or 'rules'})" if ref.name else "safe-mode rules"),
        ("path", common.ScoringPath.Name(found.scoring_path).removeprefix("SCORING_PATH_").lower()),
        ("artifact sha256", ref.artifact_sha256 or "-"),
        ("registry", registry_line(found)),
        ("decided at", format_when(found.decided_at)),
        ("PREDICTIONS seq", str(found.prediction_seq)),
    ]
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)


@app.command()
@_friendly
def card(
    name: str,
    version: str,
    out_html: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("card.html"),
    from_dir: Annotated[
        Path | None, typer.Option("--from", help="The training run (models/<dir>) for PR curve and importances.")
    ] = None,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Write an HTML model card (metrics, PR curve, feature importance, data, approvals, lineage) for review."""
    try:
        from fraudml.model_card import render_model_card
    except ImportError:
        raise ModelCliError("fraudml.model_card is not available in this checkout") from None
    with _stub(governance, var_dir) as stub:
        found = stub.GetModel(pb.GetModelRequest(model_name=name, version=version))
    run = read_training_run(from_dir)[0] if from_dir else {}
    # The registry's record wins over the training run's; the run adds what the registry does not keep
    # (baseline and autoencoder metrics, PR curves, feature importance, dataset file).
    metadata = {**run, **card_metadata(found.model)}
    approvals = [
        {"approver": a.approver, "comment": a.comment, "approved_at": format_when(a.approved_at)}
        for a in found.approvals
    ]
    render_model_card(metadata, out_html, approvals=approvals, lineage=card_lineage(found))
    out.print(f"model card of {name} {version} written to {out_html}")
