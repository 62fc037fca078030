"""``fraudctl audit ...``: verify the tamper-evident log, and prove a transaction's events (docs/audit.md).

The log is read directly from NATS (``--nats``, else the running platform's ``FRAUD_NATS_URL`` under
``--var-dir``); verifying keys come from the secrets port (every version of ``audit-signing``), or from
``--public-key``. Every run is itself recorded on the AUDIT stream as AuditCommandRun (who, what, when, exit).

Exit codes: 0 verified; 1 something did not verify (or could not be read); 2 bad input (unknown stream or
transaction, a range that does not exist); 3 cannot reach NATS or read the keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import nats
import typer
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudctl.procfile import load_plan
from fraudshared.audit.check import (
    AuditInputError,
    EventProof,
    audited_stream_names,
    prove_transaction,
    verify_stream,
)
from fraudshared.audit.decision_rules import decision_name
from fraudshared.audit.jetstream import AuditReadError, stream_bounds
from fraudshared.audit.keys import AuditKeyError, KeyRing, verifying_key_from_hex
from fraudshared.audit.verify import StreamReport
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.secrets import SecretsError, secret_store_from_env

if TYPE_CHECKING:
    from fraudshared.audit.explain import Explanation
    from fraudshared.audit.replay import ReplayedDecision

app = typer.Typer(
    no_args_is_help=True,
    help="Audit trail: verify the signed, chained log, prove inclusion, replay and explain decisions.",
)
out = Console()
err = Console(stderr=True)
OK, FAILED, BAD_INPUT, UNAVAILABLE = 0, 1, 2, 3
SOURCE = "/fraud/fraudctl"

VarDir = Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state (`fraudctl up`).")]
NatsUrl = Annotated[str | None, typer.Option("--nats", help="NATS URL; default: the running platform's.")]
Actor = Annotated[str | None, typer.Option(help="Who runs this (recorded); default: $USER.")]
PublicKeys = Annotated[
    list[str] | None,
    typer.Option("--public-key", help="Verify with this Ed25519 public key (64 hex) instead of the secrets store."),
]


class AuditCliError(Exception):
    """A one-line failure with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


Body = Callable[[JetStreamContext], Awaitable[tuple[int, str]]]


def _nats_url(nats_url: str | None, var_dir: Path) -> str:
    if nats_url:
        return nats_url
    plan = load_plan(var_dir)
    if plan is None or "FRAUD_NATS_URL" not in plan.env:
        raise AuditCliError(f"no running platform under {var_dir} (start it with `fraudctl up`) and no --nats", 2)
    return plan.env["FRAUD_NATS_URL"]


def _keys(public_keys: list[str] | None, var_dir: Path) -> KeyRing:
    if public_keys:
        return KeyRing(verifying_key_from_hex(k) for k in public_keys)
    logging.getLogger("fraudshared.secrets").setLevel(logging.ERROR)  # no development-mode banner in CLI output
    store = secret_store_from_env({**os.environ, "FRAUD_VAR_DIR": str(var_dir)})
    return KeyRing.from_secrets(store)


def _run(ctx: typer.Context, nats_url: str | None, var_dir: Path, actor: str | None, body: Body) -> None:
    """Connects, runs ``body``, records the run on AUDIT, prints errors as one line, exits with the code."""
    try:
        url = _nats_url(nats_url, var_dir)
        code = asyncio.run(_session(ctx, url, actor or os.environ.get("USER") or "unknown", body))
    except AuditCliError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = exc.code
    raise typer.Exit(code)


async def _session(ctx: typer.Context, url: str, actor: str, body: Body) -> int:
    try:
        async with asyncio.timeout(10):
            # max_reconnect_attempts=0 would make nats.py retry the first connect forever; error_cb keeps it quiet.
            nc = await nats.connect(
                url, connect_timeout=3, max_reconnect_attempts=1, reconnect_time_wait=0.1, error_cb=_quiet
            )
    except Exception as exc:  # nats raises several unrelated types for "cannot connect"
        raise AuditCliError(f"cannot connect to NATS at {url}: {exc or type(exc).__name__}", UNAVAILABLE) from None
    js = nc.jetstream(timeout=10.0)
    started = datetime.now(UTC)
    try:
        try:
            code, outcome = await body(js)
        except AuditInputError as exc:
            code, outcome = BAD_INPUT, str(exc)
        except (AuditKeyError, SecretsError) as exc:
            code, outcome = UNAVAILABLE, f"cannot read the verifying keys: {exc}"
        except AuditReadError as exc:
            code, outcome = FAILED, f"NOT VERIFIED: {exc}"
        if code != OK and outcome:
            err.print(f"[red]error:[/] {escape(outcome)}", highlight=False, soft_wrap=True)
        await _record(js, ctx, actor, started, code, outcome)
        return code
    finally:
        await nc.close()


async def _quiet(_: Exception) -> None:
    return None


async def _record(
    js: JetStreamContext, ctx: typer.Context, actor: str, started: datetime, code: int, outcome: str
) -> None:
    """Appends AuditCommandRun on ``fraud.audit.commands.<command>`` (a warning if it cannot)."""
    command = ctx.command_path.split(" ", 1)[-1] if ctx.command_path else "audit"
    run_id = uuid.uuid4().hex
    finished = datetime.now(UTC)
    arguments = [f"{k}={v}" for k, v in sorted(ctx.params.items()) if v not in (None, [], ()) and k != "actor"]
    message = audit_pb.AuditCommandRun(
        schema_version=1,
        run_id=run_id,
        command=command,
        arguments=arguments,
        actor=actor,
        host=socket.gethostname(),
        exit_code=code,
        outcome=outcome[:500],
    )
    message.started_at.FromDatetime(started)
    message.finished_at.FromDatetime(finished)
    verb = command.split()[-1] if command else "audit"
    envelope = new_envelope(
        message,
        source=SOURCE,
        subject=actor if actor.isprintable() and " " not in actor else "unknown",
        event_id=event_id("AuditCommandRun", run_id),
        time=finished,
        schema_version=1,
    )
    try:
        await EventStore(js).append(envelope, subject=f"fraud.audit.commands.{verb}")
    except Exception as exc:  # never turn a verified result into a failure, but say it was not recorded
        err.print(f"[yellow]warning:[/] this run was not recorded on AUDIT: {escape(str(exc))}", soft_wrap=True)


# ---- verify --------------------------------------------------------------------------------------------------


@app.command()
def verify(
    ctx: typer.Context,
    stream: Annotated[str | None, typer.Option(help="Only this stream (default: every stream but AUDIT).")] = None,
    from_seq: Annotated[int | None, typer.Option("--from", help="First sequence (needs --stream).")] = None,
    to_seq: Annotated[int | None, typer.Option("--to", help="Last sequence (needs --stream).")] = None,
    nats_url: NatsUrl = None,
    public_key: PublicKeys = None,
    actor: Actor = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Re-read the streams, recompute every event hash, check Merkle roots, chain and signatures."""

    async def body(js: JetStreamContext) -> tuple[int, str]:
        window = None
        if from_seq is not None or to_seq is not None:
            if stream is None:
                raise AuditInputError("--from/--to need --stream: sequences are numbered per stream")
            _, last = await _bounds_or_zero(js, stream)
            window = (from_seq if from_seq is not None else 1, to_seq if to_seq is not None else last)
        keys = await asyncio.to_thread(_keys, public_key, var_dir)
        reports = [
            await verify_stream(js, name, keys, window) for name in ([stream] if stream else audited_stream_names())
        ]
        _print_reports(reports, keys)
        return _verdict(reports, window is not None)

    _run(ctx, nats_url, var_dir, actor, body)


async def _bounds_or_zero(js: JetStreamContext, stream: str) -> tuple[int, int]:
    try:
        return await stream_bounds(js, stream)
    except NotFoundError:
        raise AuditInputError(f"there is no stream {stream!r}") from None


def _verdict(reports: list[StreamReport], windowed: bool) -> tuple[int, str]:
    events = sum(r.events_verified for r in reports)
    checkpoints = sum(r.checkpoints_verified for r in reports)
    findings = [f for r in reports for f in r.findings]
    unsealed = sum(r.unsealed[1] - r.unsealed[0] + 1 for r in reports if r.unsealed)
    if findings or not all(r.ok for r in reports):
        return FAILED, f"NOT VERIFIED: {len(findings)} finding(s); first: {findings[0] if findings else '?'}"
    if windowed and unsealed:
        span = next(r.unsealed for r in reports if r.unsealed)
        return FAILED, f"NOT VERIFIED: sequences {span[0]}..{span[1]} are not sealed by any checkpoint yet"
    text = f"verified {events} events in {checkpoints} checkpoints over {len(reports)} stream(s)"
    out.print(f"[green]{text}[/]" + (f"; {unsealed} event(s) not yet sealed" if unsealed else ""), highlight=False)
    return OK, text


def _print_reports(reports: list[StreamReport], keys: KeyRing) -> None:
    table = Table(
        "stream", "sequences", "checkpoints", "events verified", "not yet sealed", "result", title="audit verify"
    )
    for r in reports:
        span = r.window or (1, r.stream_last_seq)
        unsealed = f"{r.unsealed[0]}..{r.unsealed[1]}" if r.unsealed else "-"
        result = "[green]ok[/]" if r.ok else f"[red]FAILED ({len(r.findings)})[/]"
        checked = f"{r.checkpoints_verified}/{r.checkpoints_checked}"
        table.add_row(
            r.stream, f"{span[0]}..{span[1]}" if span[1] else "empty", checked, str(r.events_verified), unsealed, result
        )
    out.print(table)
    out.print(f"verifying keys: {keys.describe()}", highlight=False)
    for r in reports:
        for finding in r.findings:
            out.print(f"[red]x[/] {escape(str(finding))}", highlight=False, soft_wrap=True)


# ---- prove ---------------------------------------------------------------------------------------------------


@app.command()
def prove(
    ctx: typer.Context,
    transaction: Annotated[str, typer.Option("--transaction", help="Transaction id.")],
    nats_url: NatsUrl = None,
    public_key: PublicKeys = None,
    actor: Actor = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Inclusion proofs (RFC 6962 audit paths) of a transaction's events in their signed checkpoints."""

    async def body(js: JetStreamContext) -> tuple[int, str]:
        keys = await asyncio.to_thread(_keys, public_key, var_dir)
        proofs = await prove_transaction(js, transaction, keys)
        for proof in proofs:
            _print_proof(proof)
        proven = sum(p.ok for p in proofs)
        if proven != len(proofs):
            return FAILED, f"NOT PROVEN: {len(proofs) - proven} of {len(proofs)} event(s) of {transaction}"
        text = f"proven: {proven} event(s) of transaction {transaction} are in signed checkpoints"
        out.print(f"[green]{text}[/]", highlight=False)
        return OK, text

    _run(ctx, nats_url, var_dir, actor, body)


def _print_proof(proof: EventProof) -> None:
    table = Table(show_header=False, title=f"{proof.stream} seq {proof.seq}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [("event", f"{proof.event_id} ({proof.event_type})"), ("event sha256", proof.event_hash.hex())]
    cp = proof.checkpoint
    if cp is not None:
        rows += [
            ("checkpoint", f"{cp.label} sealed {cp.sealed_at.isoformat(timespec='seconds')}"),
            ("signed by", f"key {cp.key_id} version {cp.key_version}"),
            ("merkle root", cp.merkle_root.hex()),
            ("leaf", f"index {proof.index} of {cp.size}"),
        ]
        rows += [(f"path[{i}]", p.hex()) for i, p in enumerate(proof.proof)]
    rows.append(("result", "[green]proven[/]" if proof.ok else f"[red]{escape('; '.join(proof.problems))}[/]"))
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)


# ---- replay --------------------------------------------------------------------------------------------------


class DirectoryArtifacts:
    """Artifacts from a content-addressed directory as governance stores them: ``<root>/sha256/ab/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def fetch(self, sha256: str) -> bytes:
        from fraudshared.audit.replay import ReplayError

        path = self._root / "sha256" / sha256[:2] / sha256
        try:
            return path.read_bytes()
        except OSError:
            raise ReplayError(f"artifact {sha256[:12]}... is not in {self._root}") from None


class GovernanceArtifacts:
    """Artifacts by content address from governance (GetModelArtifact)."""

    def __init__(self, address: str) -> None:
        self._address = address

    def fetch(self, sha256: str) -> bytes:
        import grpc

        from fraud.governance.v1 import governance_service_pb2 as gov
        from fraud.governance.v1 import governance_service_pb2_grpc as gov_grpc
        from fraudshared.audit.replay import ReplayError

        options = [("grpc.max_receive_message_length", 64 << 20)]
        try:
            with grpc.insecure_channel(self._address, options=options) as channel:
                request = gov.GetModelArtifactRequest(sha256=sha256)
                return bytes(gov_grpc.GovernanceServiceStub(channel).GetModelArtifact(request, timeout=30).content)
        except grpc.RpcError as exc:
            code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
            raise ReplayError(
                f"governance at {self._address} did not return artifact {sha256[:12]}...: {code}"
            ) from None


def _artifacts(
    artifact_dir: Path | None, governance: str | None, var_dir: Path
) -> DirectoryArtifacts | GovernanceArtifacts:
    if artifact_dir is not None:
        return DirectoryArtifacts(artifact_dir)
    if governance:
        return GovernanceArtifacts(governance)
    plan = load_plan(var_dir)
    if plan is None or "governance" not in plan.components:
        raise AuditInputError(
            "no running governance to fetch model artifacts from: pass --governance or --artifact-dir"
        )
    return GovernanceArtifacts(plan.address("governance"))


def _when(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditInputError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-25T12:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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
        from fraudshared.audit.replay import ReplayError, replay_decisions  # pandas, onnxruntime: only here

        if (transaction is None) == (from_time is None or to_time is None):
            raise AuditInputError("give --transaction, or --from and --to")
        window = (_when(from_time), _when(to_time)) if from_time and to_time else None
        source = _artifacts(artifact_dir, governance, var_dir)
        try:
            results = await replay_decisions(
                js, source, transaction_id=transaction, window=window, partitions=_partitions(partitions)
            )
        except ReplayError as exc:
            return UNAVAILABLE, str(exc)
        _print_replay(results)
        bad = [r for r in results if not r.ok]
        text = f"replayed {len(results)} decision(s): {len(results) - len(bad)} match, {len(bad)} mismatch"
        out.print(f"[green]{text}[/]" if not bad else f"[red]{text}[/]", highlight=False)
        return (FAILED if bad else OK), text

    _run(ctx, nats_url, var_dir, actor, body)


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
        _print_explanation(transaction, found)
        p = found.prediction
        return OK, f"explained {transaction}: {decision_name(p.decision)} {p.score:.4f}"

    _run(ctx, nats_url, var_dir, actor, body)


def _stamp(value: Any) -> str:
    return value.ToDatetime(UTC).isoformat(timespec="milliseconds") if value.seconds or value.nanos else "-"


def _print_explanation(transaction: str, found: Explanation) -> None:
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
        rows.append(("transaction", f"{amount} at terminal {tx.terminal_id}, card {tx.card_token[:12]}..."))
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
