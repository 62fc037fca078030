"""``fraudctl audit explain``: one decision from the log, with the deciding model version's lineage."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from nats.js import JetStreamContext
from rich.markup import escape
from rich.table import Table

from fraudctl.audit_cli import FAILED, OK, Actor, NatsUrl, VarDir, app, out, print_findings, run_audit
from fraudshared.audit.decision_rules import decision_name

if TYPE_CHECKING:
    from fraudshared.audit.explain import Explanation

# ---- explain -------------------------------------------------------------------------------------------------


@app.command()
def explain(
    ctx: typer.Context,
    transaction: Annotated[str, typer.Option("--transaction", help="Transaction id.")],
    nats_url: NatsUrl = None,
    actor: Actor = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """A decision from the log: score, reasons, features, fallback rung, and the model's lineage."""

    async def body(js: JetStreamContext) -> tuple[int, str]:
        from fraudshared.audit.explain import explain_transaction

        found = await explain_transaction(js, transaction)
        _print_explanation(transaction, found, var_dir)
        p = found.prediction
        text = f"explained {transaction}: {decision_name(p.decision)} {p.score:.4f}"
        text += print_findings(found.findings)  # conflicts and unreadable inputs: the explanation is of the record
        return (FAILED if found.findings else OK), text

    run_audit(ctx, nats_url, var_dir, actor, body)


def _stamp(value: Any) -> str:
    return value.ToDatetime(UTC).isoformat(timespec="milliseconds") if value.seconds or value.nanos else "-"


def _card(tx: Any, var_dir: Path) -> str:
    """The card as an auditor may see it: subject id, and the sealed card token unless it was erased."""
    if not tx.subject_id:
        return f"card token {tx.card_token[:12]}... (written before erasure support)"
    from fraudshared.privacy import CARD_TOKEN_FIELD, PrivacyError, read_field, subject_key_store_from_env

    try:
        token = read_field(
            subject_key_store_from_env(var_dir=var_dir), tx.subject_id, CARD_TOKEN_FIELD, tx.sealed_card_token
        )
    except PrivacyError as exc:
        token = f"<unreadable: {exc}>"
    shown = token if token.startswith("<") else f"{token[:12]}..."
    return f"subject {tx.subject_id}, card token {shown}"


def _print_explanation(transaction: str, found: Explanation, var_dir: Path) -> None:
    from fraud.common.v1 import decision_pb2 as common
    from fraudshared.features import FEATURE_NAMES

    p, tx, reg = found.prediction, found.transaction, found.registered
    path = common.ScoringPath.Name(p.scoring_path).removeprefix("SCORING_PATH_").lower()
    rung = {"triton": "Triton (first rung)", "local_onnx": "in-process ONNX (Triton unavailable)"}.get(path, path)
    table = Table(show_header=False, title=f"transaction {transaction}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("decision", f"{decision_name(p.decision)}" + (" (degraded)" if p.degraded else "")),
        ("score", f"{p.score:.6f} (review >= {p.thresholds.review:g}, decline >= {p.thresholds.decline:g})"),
        ("scoring path", rung),
        (
            "event time / decided",
            f"{_stamp(p.event_time)} / {_stamp(p.decided_at)} (PREDICTIONS seq {found.prediction_seq})",
        ),
    ]
    if tx is not None:
        amount = f"{tx.amount.amount_minor / 100:.2f} {tx.amount.currency}"
        rows.append(("transaction", f"{amount} at terminal {tx.terminal_id}"))
        rows.append(("card", _card(tx, var_dir)))
    ref = p.model
    if ref.name:
        rows.append(("model", f"{ref.name} {ref.version} (artifact {ref.artifact_sha256[:16]}...)"))
    if reg is not None:
        rows += [
            ("dataset sha256", reg.dataset_sha256 or "-"),
            ("code revision", reg.code_revision or "-"),
            ("feature set", reg.feature_set_version),
            ("registered", f"{_stamp(reg.registered_at)} by {reg.registered_by}"),
            (
                "approvers",
                ", ".join(f"{a.approver} ({a.comment})" if a.comment else a.approver for a in found.approvals) or "-",
            ),
        ]
        rows += [
            (f"deployed {i + 1}", f"{_stamp(d.deployed_at)} by {d.deployed_by}")
            for i, d in enumerate(found.deployments)
        ]
    for key, value in rows:
        table.add_row(key, escape(value))
    out.print(table)
    reasons = Table("reason code", "feature", "contribution", "description", title="reasons", title_justify="left")
    for r in p.reason_codes:
        reasons.add_row(r.code, r.feature or "-", f"{r.contribution:+.4f}" if r.feature else "-", escape(r.description))
    out.print(reasons if p.reason_codes else "reasons: none (APPROVE)")
    names = list(reg.feature_names) if reg is not None and reg.feature_names else list(FEATURE_NAMES)
    vector = Table("feature", "value", title=f"feature vector ({p.feature_set_version})", title_justify="left")
    for name, value in zip(names, p.feature_values, strict=False):
        vector.add_row(name, f"{value:.6g}")
    out.print(vector)
