"""``fraudctl model ...``: the model registry from the command line, over the governance gRPC service.

The service's address is ``--governance host:port`` or, by default, the governance component of the runtime
that ``fraudctl up`` started under ``--var-dir``. A gRPC error prints one line (status code and details) and
exits 1, without a traceback.
"""

from __future__ import annotations

import functools
import getpass
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf.json_format import ParseDict, ParseError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as events_pb
from fraud.governance.v1 import governance_service_pb2 as pb
from fraud.governance.v1 import governance_service_pb2_grpc as pb_grpc
from fraudctl.procfile import load_plan

app = typer.Typer(no_args_is_help=True, help="Model registry: register, approve, deploy, promote, roll back, ask.")
out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
ME = getpass.getuser()  # the default actor of register/deploy/promote/rollback
MAX_MESSAGE = 64 * 1024 * 1024
ROLES = {"champion": events_pb.DEPLOYMENT_ROLE_CHAMPION, "canary": events_pb.DEPLOYMENT_ROLE_CANARY}
ROLES["shadow"] = events_pb.DEPLOYMENT_ROLE_SHADOW

Governance = Annotated[
    str | None,
    typer.Option("--governance", envvar="FRAUD_GOVERNANCE_ADDR", help="host:port; default: the running runtime's."),
]
VarDir = Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state (`fraudctl up`).")]
Actor = Annotated[str, typer.Option(help="Who acts (recorded in the event).")]


class ModelCliError(Exception):
    """A one-line, user-actionable failure of a ``model`` command."""


def _friendly(command: F) -> F:
    """Prints a gRPC or CLI error as one red line and exits 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            details = exc.details() if hasattr(exc, "details") else str(exc)
            err.print(f"[red]error:[/] {code}: {escape(details or '')}", highlight=False, soft_wrap=True)
        except ModelCliError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)

    return run  # type: ignore[return-value]


def governance_address(governance: str | None, var_dir: Path) -> str:
    """``--governance`` if given, else the address of the runtime's governance service under ``var_dir``."""
    if governance:
        return governance
    plan = load_plan(var_dir)
    if plan is None or "governance" not in plan.components:
        raise ModelCliError(f"no running platform under {var_dir} (start it with `fraudctl up`) and no --governance")
    return plan.address("governance")


@contextmanager
def _stub(governance: str | None, var_dir: Path) -> Iterator[pb_grpc.GovernanceServiceStub]:
    options = [("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(governance_address(governance, var_dir), options=options) as channel:
        yield pb_grpc.GovernanceServiceStub(channel)


# ---- reading a training run's directory -----------------------------------------------------------------


def read_training_run(directory: Path) -> tuple[dict[str, Any], bytes, bytes]:
    """``metadata.json``, ``model.onnx`` and (optional) ``explainer.txt`` written by ``fraudctl train``."""
    try:
        metadata = json.loads((directory / "metadata.json").read_text())
        onnx_model = (directory / "model.onnx").read_bytes()
    except (OSError, ValueError) as exc:
        raise ModelCliError(f"{directory} is not a training run (metadata.json + model.onnx): {exc}") from None
    explainer = directory / "explainer.txt"
    return metadata, onnx_model, explainer.read_bytes() if explainer.is_file() else b""


def _first(metadata: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if metadata.get(key) not in (None, ""):
            return metadata[key]
    return default


def _split(value: Any) -> dict[str, str]:
    # "period -> start/end": accept {"train": "a/b"}, {"train": {"start": a, "end": b}} or {"train": [a, b]}.
    if not isinstance(value, Mapping):
        return {}
    split: dict[str, str] = {}
    for period, bounds in value.items():
        if isinstance(bounds, Mapping):
            split[str(period)] = f"{bounds.get('start', '')}/{bounds.get('end', '')}"
        elif isinstance(bounds, list | tuple) and len(bounds) == 2:
            split[str(period)] = f"{bounds[0]}/{bounds[1]}"
        else:
            split[str(period)] = str(bounds)
    return split


def _profile(value: Any) -> events_pb.ReferenceProfile | None:
    # The protobuf JSON form, or {feature: {"bin_edges": [...], "frequencies": [...]}}.
    if not isinstance(value, Mapping) or not value:
        return None
    profile = events_pb.ReferenceProfile()
    try:
        return ParseDict(value, profile, ignore_unknown_fields=True) if "histograms" in value else _by_feature(value)
    except (ParseError, TypeError, ValueError, AttributeError) as exc:
        raise ModelCliError(f"metadata.json reference_profile is not readable: {exc}") from None


def _by_feature(value: Mapping[str, Any]) -> events_pb.ReferenceProfile:
    profile = events_pb.ReferenceProfile(rows=int(value.get("rows", 0) or 0))
    for feature, hist in value.items():
        if isinstance(hist, Mapping):
            edges, freqs = hist.get("bin_edges") or hist.get("edges"), hist.get("frequencies") or hist.get("freqs")
            profile.histograms.add(feature=str(feature), bin_edges=edges or [], frequencies=freqs or [])
    return profile


def register_request(
    metadata: Mapping[str, Any], onnx_model: bytes, explainer: bytes, *, name: str | None, version: str | None, by: str
) -> pb.RegisterModelRequest:
    """The RegisterModel request for a training run (keys read defensively; see docs/models.md)."""
    thresholds = _first(metadata, "thresholds", default={}) or {}
    model_name = name or _first(metadata, "model_name", "name")
    model_version = version or _first(metadata, "version", "model_version")
    if not model_name or not model_version:
        raise ModelCliError("metadata.json names no model_name/version: pass --name and --version")
    metrics = {k: float(v) for k, v in (_first(metadata, "metrics", default={}) or {}).items() if _number(v)}
    if not all(_number(thresholds.get(k)) for k in ("review", "decline")):
        raise ModelCliError("metadata.json has no thresholds {review, decline}")
    request = pb.RegisterModelRequest(
        model_name=model_name,
        version=model_version,
        onnx_model=onnx_model,
        explainer_model=explainer,
        dataset_sha256=str(_first(metadata, "dataset_sha256", default="")),
        feature_set_version=str(_first(metadata, "feature_set_version", default="")),
        feature_names=[str(n) for n in _first(metadata, "feature_names", default=[])],
        code_revision=str(_first(metadata, "code_revision", "git_commit", default="")),
        params={str(k): str(v) for k, v in (_first(metadata, "params", default={}) or {}).items()},
        metrics=metrics,
        thresholds=common.Thresholds(review=float(thresholds["review"]), decline=float(thresholds["decline"])),
        registered_by=by,
        data_split=_split(_first(metadata, "data_split", "split", default={})),
    )
    profile = _profile(_first(metadata, "reference_profile", default=None))
    if profile is not None:
        request.reference_profile.CopyFrom(profile)
    return request


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- printing ---------------------------------------------------------------------------------------------


def _stage(value: int) -> str:
    return pb.ModelStage.Name(value).removeprefix("MODEL_STAGE_").lower()


def _role(value: int) -> str:
    return "" if not value else events_pb.DeploymentRole.Name(value).removeprefix("DEPLOYMENT_ROLE_").lower()


def _when(stamp: Any) -> str:
    return stamp.ToDatetime(UTC).isoformat(timespec="seconds") if stamp.seconds or stamp.nanos else ""


def _summary(model: pb.ModelVersion, title: str) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    role = _role(model.role) + (f" {model.canary_percent}%" if model.canary_percent else "")
    rows = [
        ("model", f"{model.model_name} {model.version}"),
        ("stage", _stage(model.stage) + (f" ({role})" if role else "")),
        ("artifact sha256", model.artifact_sha256),
        ("explainer sha256", model.explainer_artifact_sha256 or "-"),
        ("dataset sha256", model.dataset_sha256),
        ("feature set", f"{model.feature_set_version} ({len(model.feature_names)} features)"),
        ("code revision", model.code_revision or "-"),
        ("thresholds", f"review {model.thresholds.review:g} / decline {model.thresholds.decline:g}"),
        ("registered", f"{_when(model.registered_at)} by {model.registered_by}"),
        ("approvers", ", ".join(model.approvers) or "-"),
        ("triton", model.triton_model_name or "-"),
    ]
    rows += [(f"metric {k}", f"{v:.4f}") for k, v in sorted(model.metrics.items())]
    rows += [(f"param {k}", v) for k, v in sorted(model.params.items())]
    rows += [(f"split {k}", v) for k, v in sorted(model.data_split.items())]
    rows += [(f"check {k}", v) for k, v in sorted(model.validation_checks.items())]
    for key, value in rows:
        table.add_row(key, escape(value))
    return table


# ---- commands ---------------------------------------------------------------------------------------------


@app.command()
@_friendly
def register(
    from_dir: Annotated[Path, typer.Option("--from", help="A training run: models/<dir> from `fraudctl train`.")],
    name: Annotated[str | None, typer.Option(help="Model name (default: metadata.json's).")] = None,
    version: Annotated[str | None, typer.Option(help="Semantic version (default: metadata.json's).")] = None,
    registered_by: Actor = ME,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Register a trained model (ONNX + explainer + lineage); governance validates it on the way in."""
    metadata, onnx_model, explainer = read_training_run(from_dir)
    request = register_request(metadata, onnx_model, explainer, name=name, version=version, by=registered_by)
    with _stub(governance, var_dir) as stub:
        model = stub.RegisterModel(request).model
    out.print(_summary(model, f"registered {model.model_name} {model.version}"))


@app.command()
@_friendly
def approve(
    name: str,
    version: str,
    approver: Annotated[str, typer.Option(help="Who signs off (not the registrant; two are needed).")],
    comment: Annotated[str, typer.Option(help="Justification.")] = "",
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Sign off a validated version (four eyes: two distinct approvers, neither the registrant)."""
    with _stub(governance, var_dir) as stub:
        request = pb.ApproveModelRequest(model_name=name, version=version, approver=approver, comment=comment)
        model = stub.ApproveModel(request).model
    out.print(f"{name} {version}: {_stage(model.stage)}, approved by {', '.join(model.approvers)}")


@app.command()
@_friendly
def deploy(
    name: str,
    version: str,
    role: Annotated[str, typer.Option(help="champion, canary or shadow.")] = "champion",
    canary_percent: Annotated[int, typer.Option(min=0, max=100, help="Traffic share of a canary (1-100).")] = 0,
    deployed_by: Actor = ME,
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Load an approved version into Triton, warm it, and serve it in a role."""
    if role not in ROLES:
        raise ModelCliError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    with _stub(governance, var_dir) as stub:
        request = pb.DeployModelRequest(
            model_name=name, version=version, role=ROLES[role], canary_percent=canary_percent, deployed_by=deployed_by
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
    promoted_by: Actor = ME,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Make a deployed canary or shadow the champion (the old champion retires and is unloaded)."""
    with _stub(governance, var_dir) as stub:
        request = pb.PromoteModelRequest(model_name=name, version=version, promoted_by=promoted_by, reason=reason)
        model = stub.PromoteModel(request).model
    out.print(f"{name} {model.version} is the champion")


@app.command()
@_friendly
def rollback(
    name: str,
    rolled_back_by: Actor = ME,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    governance: Governance = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Restore the previous champion (reloaded and warmed first); the current one retires."""
    with _stub(governance, var_dir) as stub:
        request = pb.RollbackModelRequest(model_name=name, rolled_back_by=rolled_back_by, reason=reason)
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
        role = _role(m.role) + (f" {m.canary_percent}%" if m.canary_percent else "")
        metric = [f"{m.metrics[k]:.3f}" if k in m.metrics else "-" for k in ("auc_roc", "average_precision")]
        table.add_row(
            m.model_name, m.version, _stage(m.stage), role, ", ".join(m.approvers), *metric, _when(m.registered_at)
        )
    out.print(table if models else "no model versions registered")


@app.command()
@_friendly
def show(name: str, version: str, governance: Governance = None, var_dir: VarDir = Path("var")) -> None:
    """Full lineage of a version: data, code, params, metrics, checks, approvals, deployments, promotions."""
    with _stub(governance, var_dir) as stub:
        found = stub.GetModel(pb.GetModelRequest(model_name=name, version=version))
    out.print(_summary(found.model, f"{name} {version}"))
    approvals = Table("approver", "at", "comment", title="approvals", title_justify="left")
    for a in found.approvals:
        approvals.add_row(a.approver, _when(a.approved_at), escape(a.comment))
    history = Table("seq", "event", "role", "by", "at", "detail", title="history", title_justify="left")
    for h in found.history:
        role = _role(h.role) + (f" {h.canary_percent}%" if h.canary_percent else "")
        detail = " ".join(x for x in (h.other_version and f"({h.other_version})", h.reason) if x)
        history.add_row(str(h.stream_seq), h.kind, role, h.actor, _when(h.at), escape(detail))
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


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset allowed; none = UTC), or ``now``."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ModelCliError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-25T12:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
        ("model", f"{ref.name} {ref.version} ({_role(found.role) or 'rules'})" if ref.name else "safe-mode rules"),
        ("path", common.ScoringPath.Name(found.scoring_path).removeprefix("SCORING_PATH_").lower()),
        ("artifact sha256", ref.artifact_sha256 or "-"),
        ("registry", _registry_line(found)),
        ("decided at", _when(found.decided_at)),
        ("PREDICTIONS seq", str(found.prediction_seq)),
    ]
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)


def _registry_line(found: pb.GetDecisionModelResponse) -> str:
    if not found.HasField("model"):
        return "not in this registry" if found.model_ref.name else "-"
    match = "artifact matches" if found.artifact_matches else "ARTIFACT DIFFERS from the registry's"
    return f"{_stage(found.model.stage)} now; {match}"


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
        {"approver": a.approver, "comment": a.comment, "approved_at": _when(a.approved_at)} for a in found.approvals
    ]
    render_model_card(metadata, out_html, approvals=approvals, lineage=card_lineage(found))
    out.print(f"model card of {name} {version} written to {out_html}")


def card_metadata(model: pb.ModelVersion) -> dict[str, Any]:
    """The registry's view of a version in metadata.json's vocabulary (what the model card renders)."""
    return {
        "model_name": model.model_name,
        "version": model.version,
        "stage": _stage(model.stage),
        "role": _role(model.role),
        "artifact_sha256": model.artifact_sha256,
        "explainer_artifact_sha256": model.explainer_artifact_sha256,
        "dataset_sha256": model.dataset_sha256,
        "feature_set_version": model.feature_set_version,
        "feature_names": list(model.feature_names),
        "code_revision": model.code_revision,
        "params": dict(model.params),
        "metrics": dict(model.metrics),
        "thresholds": {"review": model.thresholds.review, "decline": model.thresholds.decline},
        "model_sha256": model.artifact_sha256,
        "registered_by": model.registered_by,
        "registered_at": _when(model.registered_at),
        "data_split": dict(model.data_split),
        "validation_checks": dict(model.validation_checks),
    }


def card_lineage(found: pb.GetModelResponse) -> dict[str, str]:
    """The registry's lineage of a version as the card's key/value rows."""
    model = found.model
    rows = {
        "stage": _stage(model.stage) + (f" ({_role(model.role)})" if model.role else ""),
        "registered": f"{_when(model.registered_at)} by {model.registered_by}",
        "explainer sha256": model.explainer_artifact_sha256 or "none",
        "validation": "; ".join(f"{k}: {v}" for k, v in sorted(model.validation_checks.items())),
        "reference profile": f"{len(found.reference_profile.histograms)} histograms over "
        f"{found.reference_profile.rows} rows",
    }
    for h in found.history:
        role = _role(h.role) + (f" {h.canary_percent}%" if h.canary_percent else "")
        detail = ", ".join(x for x in (role, h.actor and f"by {h.actor}", h.other_version, h.reason) if x)
        rows[f"#{h.stream_seq} {h.kind}"] = f"{_when(h.at)} {detail}".strip()
    return rows
