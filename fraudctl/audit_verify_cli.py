"""``fraudctl audit verify`` and ``audit prove``: check the signed, chained log and prove inclusion (docs/audit.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from rich.markup import escape
from rich.table import Table

from fraud.events.v1.quarantine_events_pb2 import EventQuarantined, QuarantineReason
from fraudctl.audit_cli import (
    FAILED,
    OK,
    Actor,
    NatsUrl,
    PublicKeys,
    VarDir,
    app,
    out,
    run_audit,
    verifying_keys,
)
from fraudshared.audit.check import AuditInputError, EventProof, audited_stream_names, prove_transaction, verify_stream
from fraudshared.audit.jetstream import stream_bounds
from fraudshared.audit.keys import KeyRing
from fraudshared.audit.verify import StreamReport
from fraudshared.events.quarantine import read_quarantined
from fraudshared.events.store import EventStore

MAX_LISTED = 50

# ---- verify --------------------------------------------------------------------------------------------------


@app.command()
def verify(
    ctx: typer.Context,
    stream: Annotated[str | None, typer.Option(help="Only this stream (default: every stream but AUDIT).")] = None,
    from_seq: Annotated[int | None, typer.Option("--from", help="First sequence (needs --stream).")] = None,
    to_seq: Annotated[int | None, typer.Option("--to", help="Last sequence (needs --stream).")] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 1) when any event is unreadable or was quarantined.")
    ] = False,
    nats_url: NatsUrl = None,
    public_key: PublicKeys = None,
    actor: Actor = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Re-read the streams, recompute every event hash, check Merkle roots, chain and signatures.

    Also lists, by stream and sequence, events that are not readable envelopes (sealed by their raw hash, so
    still verified) and events a reader quarantined (the QUARANTINE stream; docs/audit.md).
    """

    async def body(js: JetStreamContext) -> tuple[int, str]:
        window = None
        if from_seq is not None or to_seq is not None:
            if stream is None:
                raise AuditInputError("--from/--to need --stream: sequences are numbered per stream")
            _, last = await _bounds_or_zero(js, stream)
            window = (from_seq if from_seq is not None else 1, to_seq if to_seq is not None else last)
        keys = await asyncio.to_thread(verifying_keys, public_key, var_dir)
        reports = [
            await verify_stream(js, name, keys, window) for name in ([stream] if stream else audited_stream_names())
        ]
        _print_reports(reports, keys)
        quarantined = _in_scope(await read_quarantined(EventStore(js)), reports)
        _print_unusable(reports, quarantined)
        unusable = {(r.stream, seq) for r in reports for seq in r.unreadable}
        unusable |= {(q.stream, q.stream_sequence) for q in quarantined}
        return _verdict(reports, window is not None, len(unusable), strict)

    run_audit(ctx, nats_url, var_dir, actor, body)


async def _bounds_or_zero(js: JetStreamContext, stream: str) -> tuple[int, int]:
    try:
        return await stream_bounds(js, stream)
    except NotFoundError:
        raise AuditInputError(f"there is no stream {stream!r}") from None


def _in_scope(records: list[EventQuarantined], reports: list[StreamReport]) -> list[EventQuarantined]:
    spans = {r.stream: r.window or (1, r.stream_last_seq) for r in reports}
    return [q for q in records if q.stream in spans and spans[q.stream][0] <= q.stream_sequence <= spans[q.stream][1]]


def _print_unusable(reports: list[StreamReport], quarantined: list[EventQuarantined]) -> None:
    for r in reports:
        if r.unreadable:
            shown = ", ".join(map(str, r.unreadable[:MAX_LISTED])) + (" ..." if len(r.unreadable) > MAX_LISTED else "")
            out.print(
                f"[yellow]![/] {r.stream}: {len(r.unreadable)} event(s) are not readable envelopes "
                f"(verified by their raw hash; no reader can use them): seq {shown}",
                highlight=False,
                soft_wrap=True,
            )
    if not quarantined:
        return
    readers: dict[tuple[str, int], dict[str, str]] = {}
    for q in quarantined:
        reason = QuarantineReason.Name(q.reason).removeprefix("QUARANTINE_REASON_").lower().replace("_", " ")
        readers.setdefault((q.stream, q.stream_sequence), {})[q.reader] = reason
    table = Table("stream", "seq", "skipped by (reason)", title="quarantined events")
    for (name, seq), by in sorted(readers.items())[:MAX_LISTED]:
        table.add_row(name, str(seq), escape(", ".join(f"{reader} ({why})" for reader, why in sorted(by.items()))))
    out.print(table)
    if len(readers) > MAX_LISTED:
        out.print(f"... and {len(readers) - MAX_LISTED} more quarantined event(s)", highlight=False)


def _verdict(reports: list[StreamReport], windowed: bool, unusable: int = 0, strict: bool = False) -> tuple[int, str]:
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
    if unusable:  # verified all the same (sealed by their hash), but no reader could use them
        note = f"{unusable} event(s) unreadable or quarantined (listed above)"
        out.print(f"[yellow]{note}[/]", highlight=False)
        if strict:
            return FAILED, f"NOT CLEAN (--strict): {text}; {note}"
        text += f"; {note}"
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
        keys = await asyncio.to_thread(verifying_keys, public_key, var_dir)
        proofs = await prove_transaction(js, transaction, keys)
        for proof in proofs:
            _print_proof(proof)
        proven = sum(p.ok for p in proofs)
        if proven != len(proofs):
            first = next(line for p in proofs if not p.ok for line in [*p.problems, *p.conflicts, "not sealed"])
            return FAILED, f"NOT PROVEN: {len(proofs) - proven} of {len(proofs)} event(s) of {transaction}; {first}"
        text = f"proven: {proven} event(s) of transaction {transaction} are in signed checkpoints"
        out.print(f"[green]{text}[/]", highlight=False)
        return OK, text

    run_audit(ctx, nats_url, var_dir, actor, body)


def _print_proof(proof: EventProof) -> None:
    where = f"{proof.stream} seq {proof.seq}" if proof.seq else f"{proof.stream}: not stored"
    table = Table(show_header=False, title=where, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [("event", f"{proof.event_id} ({proof.event_type})")]
    if proof.seq:
        rows.append(("event sha256", proof.event_hash.hex()))
    cp = proof.checkpoint
    if cp is not None:
        rows += [
            ("checkpoint", f"{cp.label} sealed {cp.sealed_at.isoformat(timespec='seconds')}"),
            ("signed by", f"key {cp.key_id} version {cp.key_version}"),
            ("merkle root", cp.merkle_root.hex()),
            ("leaf", f"index {proof.index} of {cp.size}"),
        ]
        rows += [(f"path[{i}]", p.hex()) for i, p in enumerate(proof.proof)]
    rows += [("conflict", f"[red]{escape(c)}[/]") for c in proof.conflicts]
    problems = "; ".join(proof.problems) or "the record is in its checkpoint, but a later event conflicts with it"
    rows.append(("result", "[green]proven[/]" if proof.ok else f"[red]{escape(problems)}[/]"))
    for key, value in rows:
        table.add_row(key, value)
    out.print(table)
