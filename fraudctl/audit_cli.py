"""``fraudctl audit ...``: the typer app, its shared options, and how every audit command runs (docs/audit.md).

The log is read directly from NATS (``--nats``, else the running platform's ``FRAUD_NATS_URL`` under
``--var-dir``), over TLS for a ``tls://`` URL, as the development auditor (read-only) unless the global
``fraudctl --as NAME`` or FRAUD_CREDENTIAL names another certificate. Verifying keys come from the secrets
port (every version of ``audit-signing``), or from ``--public-key``. Every run is recorded on the AUDIT
stream as AuditCommandRun (who, what, when, exit) where the caller may append there; on the platform's
NATS only the notary writes AUDIT, so a read-only auditor's run says it was not recorded.
The commands live by concept: ``audit_verify_cli`` (verify, prove), ``audit_replay_cli`` (replay),
``audit_explain_cli`` (explain), ``audit_timeline_cli`` (timeline); importing them at the end registers them.

Exit codes: 0 verified; 1 something did not verify (or could not be read); 2 bad input (unknown stream or
transaction, a range that does not exist); 3 cannot reach NATS or read the keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import nats
import typer
from nats.js import JetStreamContext
from rich.console import Console
from rich.markup import escape

from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudctl import caller
from fraudctl.procfile import running_nats_url
from fraudshared.audit.check import AuditInputError
from fraudshared.audit.jetstream import AuditReadError
from fraudshared.audit.keys import AuditKeyError, KeyRing, verifying_key_from_hex
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.once import RecordUnreadable
from fraudshared.events.store import EventStore
from fraudshared.secrets import SecretsError, secret_store_from_env

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
    url = nats_url or running_nats_url(var_dir)
    if not url:
        raise AuditCliError(f"no running platform under {var_dir} (start it with `fraudctl up`) and no --nats", 2)
    return url


def verifying_keys(public_keys: list[str] | None, var_dir: Path) -> KeyRing:
    if public_keys:
        return KeyRing(verifying_key_from_hex(k) for k in public_keys)
    logging.getLogger("fraudshared.secrets").setLevel(logging.ERROR)  # no development-mode banner in CLI output
    store = secret_store_from_env({**os.environ, "FRAUD_VAR_DIR": str(var_dir)})
    return KeyRing.from_secrets(store)


def run_audit(ctx: typer.Context, nats_url: str | None, var_dir: Path, actor: str | None, body: Body) -> None:
    """Connects, runs ``body``, records the run on AUDIT, prints errors as one line, exits with the code."""
    try:
        url = _nats_url(nats_url, var_dir)
        try:
            tls = caller.nats_tls(var_dir) if url.startswith("tls://") else {}
        except caller.CredentialError as exc:
            raise AuditCliError(str(exc), UNAVAILABLE) from None
        who = actor or caller.as_name() or os.environ.get("USER") or "unknown"
        code = asyncio.run(_session(ctx, url, who, body, tls))
    except AuditCliError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = exc.code
    raise typer.Exit(code)


async def _session(ctx: typer.Context, url: str, actor: str, body: Body, tls: dict[str, Any]) -> int:
    try:
        async with asyncio.timeout(10):
            # max_reconnect_attempts=0 would make nats.py retry the first connect forever; error_cb keeps it quiet.
            nc = await nats.connect(
                url, connect_timeout=3, max_reconnect_attempts=1, reconnect_time_wait=0.1, error_cb=_quiet, **tls
            )
    except Exception as exc:  # nats raises several unrelated types for "cannot connect"
        hint = " (is the credential from the platform's CA? see <var>/credentials/)" if tls else ""
        why = f"{exc or type(exc).__name__}{hint}"
        raise AuditCliError(f"cannot connect to NATS at {url}: {why}", UNAVAILABLE) from None
    js = nc.jetstream(timeout=10.0)
    started = datetime.now(UTC)
    try:
        try:
            code, outcome = await body(js)
        except AuditInputError as exc:
            code, outcome = BAD_INPUT, str(exc)
        except (AuditKeyError, SecretsError) as exc:
            code, outcome = UNAVAILABLE, f"cannot read the verifying keys: {exc}"
        except (AuditReadError, RecordUnreadable) as exc:  # an unreadable event is named, never a traceback
            code, outcome = FAILED, f"NOT VERIFIED: {exc}"
        if code != OK and outcome:
            err.print(f"[red]error:[/] {escape(outcome)}", highlight=False, soft_wrap=True)
        if tls:  # the platform's NATS: only the notary may append to AUDIT (an attempt would wait for a timeout)
            err.print("note: this run is not recorded on AUDIT (only the notary appends there)", style="dim")
        else:
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


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (``Z`` allowed; no zone means UTC).

    Raises:
        AuditInputError: If ``text`` is not one.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditInputError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-25T12:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def print_findings(findings: Sequence[str], what: str = "finding(s) in the log", console: Console = out) -> str:
    """Prints each finding (a conflict, an unreadable event) on a line of its own.

    Returns:
        What the command's outcome line adds (``"; 2 finding(s) in the log, first: ..."``); empty if none.
    """
    for finding in findings:
        console.print(f"[red]![/] {escape(finding)}", highlight=False, soft_wrap=True)
    return f"; {len(findings)} {what}, first: {findings[0]}" if findings else ""


# Registers the commands on `app`, in the order `--help` lists them.
from fraudctl import audit_verify_cli, audit_replay_cli, audit_explain_cli, audit_timeline_cli  # noqa: E402, F401, I001
