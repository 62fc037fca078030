"""``fraudctl audit ...``: the typer app, its shared options, and how every audit command runs (docs/audit.md).

The log is read directly from NATS (``--nats``, else the running platform's ``FRAUD_NATS_URL`` under
``--var-dir``), over TLS for a ``tls://`` URL, as the development auditor (read-only) unless the global
``fraudctl --as NAME`` or FRAUD_CREDENTIAL names another certificate. Verifying keys come from the secrets
port (every version of ``audit-signing``), or from ``--public-key``. Every run is recorded on the AUDIT
stream as AuditCommandRun (who, what, when, exit) by governance, the only writer of AUDIT: the CLI calls
AuditService.RecordAuditRun with its credential (the caller is the recorded actor; ``--actor`` is a note)
at FRAUD_GOVERNANCE_ADDR or the running platform's governance; when that fails it prints one line and still
exits with the command's own code.
The commands live by concept: ``audit_verify_cli`` (verify, prove), ``audit_replay_cli`` (replay),
``audit_explain_cli`` (explain), ``audit_timeline_cli`` (timeline); importing them at the end registers them.

Exit codes: 0 verified; 1 something did not verify (or could not be read); 2 bad input (unknown stream or
transaction, a range that does not exist); 3 cannot reach NATS or read the keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import grpc
import nats
import typer
from nats.js import JetStreamContext
from rich.console import Console
from rich.markup import escape

from fraud.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from fraudctl import caller
from fraudctl.procfile import load_plan, running_nats_url
from fraudshared.audit.check import AuditInputError
from fraudshared.audit.jetstream import AuditReadError
from fraudshared.audit.keys import AuditKeyError, KeyRing, verifying_key_from_hex
from fraudshared.events.once import RecordUnreadable
from fraudshared.identity.client import secure_channel
from fraudshared.secrets import SecretsError, secret_store_from_env

app = typer.Typer(
    no_args_is_help=True,
    help="Audit trail: verify the signed, chained log, prove inclusion, replay and explain decisions.",
)
out = Console()
err = Console(stderr=True)
OK, FAILED, BAD_INPUT, UNAVAILABLE = 0, 1, 2, 3
RECORD_TIMEOUT_S = 5.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USERINFO = re.compile(r"://[^/@\s]*@")  # nats://user:password@host: never recorded

VarDir = Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state (`fraudctl up`).")]
NatsUrl = Annotated[str | None, typer.Option("--nats", help="NATS URL; default: the running platform's.")]
Actor = Annotated[
    str | None,
    typer.Option(help="A free-text note recorded with the run; who ran it is always the credential's principal."),
]
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
    """Connects, runs ``body``, records the run through governance, prints errors as one line, exits with the code.

    ``actor`` (the ``--actor`` option) is only a free-text note recorded with the run: who ran it is the
    principal of the credential that records it (`_record`).
    """
    started = datetime.now(UTC)
    outcome = ""
    try:
        url = _nats_url(nats_url, var_dir)
        try:
            tls = caller.nats_tls(var_dir) if url.startswith("tls://") else {}
        except caller.CredentialError as exc:
            raise AuditCliError(str(exc), UNAVAILABLE) from None
        code, outcome = asyncio.run(_session(url, body, tls))
    except AuditCliError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code, outcome = exc.code, str(exc)
    _record(ctx, var_dir, actor, started, code, outcome)
    raise typer.Exit(code)


async def _session(url: str, body: Body, tls: dict[str, Any]) -> tuple[int, str]:
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
        return code, outcome
    finally:
        await nc.close()


async def _quiet(_: Exception) -> None:
    return None


def _governance_address(var_dir: Path) -> str | None:
    """FRAUD_GOVERNANCE_ADDR, else the running platform's governance under ``var_dir``, else None."""
    address = os.environ.get("FRAUD_GOVERNANCE_ADDR")
    if address:
        return address
    plan = load_plan(var_dir)
    return plan.address("governance") if plan is not None and "governance" in plan.components else None


def _printable(text: str, limit: int) -> str:
    """``text`` without control characters or a URL's user:password, at most ``limit`` characters (the bounds)."""
    return _USERINFO.sub("://", _CONTROL.sub(" ", text))[:limit]


def record_request(
    ctx: typer.Context, note: str | None, started: datetime, code: int, outcome: str
) -> audit_service_pb2.RecordAuditRunRequest:
    """The RecordAuditRun request for this run: command, bounded ``name=value`` arguments, times, exit, outcome."""
    # From "audit" on: the program's own name varies ("fraudctl", "python -m fraudctl", a test runner's).
    words = (ctx.command_path or "audit").split()
    command = " ".join(words[words.index("audit") :]) if "audit" in words else "audit"
    given = [(k, v) for k, v in sorted(ctx.params.items()) if v not in (None, [], ()) and k != "actor"]
    arguments = [_printable(f"{k}={v}", 256) for k, v in given][:32]
    request = audit_service_pb2.RecordAuditRunRequest(
        command=command,
        arguments=arguments,
        note=_printable(note or "", 128),
        host=re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:253],
        exit_code=min(max(code, 0), 255),
        outcome=_printable(outcome.splitlines()[0] if outcome else "", 500),
    )
    request.started_at.FromDatetime(started)
    request.finished_at.FromDatetime(datetime.now(UTC))
    return request


def _record(ctx: typer.Context, var_dir: Path, note: str | None, started: datetime, code: int, outcome: str) -> None:
    """Records the run with governance's AuditService as the caller; one line when it cannot, never a new exit code."""
    request = record_request(ctx, note, started, code, outcome)
    address = _governance_address(var_dir)
    if address is None:
        err.print(
            f"note: this run is not recorded on AUDIT: no governance to record it (none running under {var_dir},"
            " no FRAUD_GOVERNANCE_ADDR)",
            style="dim",
            soft_wrap=True,
        )
        return
    try:
        credential = caller.credential(var_dir, default=caller.READ_ONLY)
        with secure_channel(address, credential) as channel:
            audit_service_pb2_grpc.AuditServiceStub(channel).RecordAuditRun(request, timeout=RECORD_TIMEOUT_S)
    except caller.CredentialError as exc:
        why = str(exc)
    except grpc.RpcError as exc:
        why = caller.explain_rpc_error(exc)
    else:
        return
    line = f"[yellow]warning:[/] this run is not recorded on AUDIT (governance at {address}): {escape(why)}"
    err.print(line, highlight=False, soft_wrap=True)


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
