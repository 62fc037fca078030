"""``fraudctl privacy forget``: erase a cardholder inside the immutable log by destroying the card's key.

Order (each step idempotent, so a run cut short can simply be run again): find the card's subject in the
key store, append SubjectErased on PRIVACY (once per subject), then destroy the key and the card -> subject
mapping. The card token itself never reaches the command's output or any event. See docs/privacy.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import nats
import typer
from rich.console import Console

from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraudctl.procfile import running_nats_url
from fraudctl.runtime import RuntimeErrorWithHint
from fraudshared import subjects
from fraudshared.events.once import OnceLog
from fraudshared.events.store import EventStore
from fraudshared.events.streams import default_specs, ensure_streams
from fraudshared.pan_token import TOKEN_KEY_NAME, TOKEN_KEY_PATH, luhn_valid, tokenize_pan
from fraudshared.privacy import subject_key_store_from_env
from fraudshared.secrets import secret_store_from_env

app = typer.Typer(no_args_is_help=True, help="Privacy: erase a cardholder (crypto-shredding, docs/privacy.md).")
out = Console()
SOURCE = "/fraud/fraudctl"
STREAM = "PRIVACY"


class PrivacyCliError(RuntimeErrorWithHint):
    """A one-line failure of a privacy command (printed without a traceback, exit 1)."""


def _card_token(card_token: str | None, pan_stdin: bool, var_dir: Path) -> str:
    if bool(card_token) == pan_stdin:
        raise PrivacyCliError("give exactly one of --card-token or --pan-stdin")
    if card_token:
        return card_token
    pan = sys.stdin.readline().strip()
    if not (pan.isdigit() and 12 <= len(pan) <= 19 and luhn_valid(pan)):
        raise PrivacyCliError("stdin does not hold a PAN (12-19 digits passing the Luhn check)")  # never echo it
    logging.getLogger("fraudshared.secrets").setLevel(logging.ERROR)
    store = secret_store_from_env({**os.environ, "FRAUD_VAR_DIR": str(var_dir)})
    return tokenize_pan(bytes.fromhex(store.get(TOKEN_KEY_PATH, TOKEN_KEY_NAME)), pan)


def _nats_url(nats_url: str | None, var_dir: Path) -> str:
    url = nats_url or running_nats_url(var_dir)
    if not url:
        raise PrivacyCliError(f"no running platform under {var_dir} (start it with `fraudctl up`) and no --nats")
    return url


async def _record(url: str, erased: privacy_events.SubjectErased) -> bool:
    """Append SubjectErased once per subject; False when an earlier run already recorded it."""
    try:
        nc = await asyncio.wait_for(nats.connect(url, connect_timeout=3, max_reconnect_attempts=1), 10)
    except Exception as exc:  # nats raises several unrelated types for "cannot connect"
        raise PrivacyCliError(f"cannot connect to NATS at {url}: {exc or type(exc).__name__}") from None
    try:
        js = nc.jetstream(timeout=10.0)
        await ensure_streams(js, [spec for spec in default_specs() if spec.name == STREAM])
        recorded = await OnceLog(js, EventStore(js), SOURCE).append_once(
            erased,
            business_id=erased.subject_id,
            subject=subjects.subject_erased(erased.subject_id),
            stream=STREAM,
            time=erased.erased_at.ToDatetime(UTC),
        )
        return recorded is None
    finally:
        await nc.close()


@app.command()
def forget(
    card_token: Annotated[str | None, typer.Option("--card-token", help="The card's token (ct_...).")] = None,
    pan_stdin: Annotated[
        bool, typer.Option("--pan-stdin", help="Read the PAN from stdin and tokenize it (never echoed).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded), e.g. a request reference.")] = "erasure request",
    actor: Annotated[str | None, typer.Option(help="Who asks (recorded); default: $USER.")] = None,
    nats_url: Annotated[str | None, typer.Option("--nats", help="NATS URL; default: the running platform's.")] = None,
    var_dir: Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state.")] = Path("var"),
) -> None:
    """Destroy a card's data key: its sealed card token reads as <erased>; the log still verifies and replays."""
    token = _card_token(card_token, pan_stdin, var_dir)
    keys = subject_key_store_from_env({**os.environ, "FRAUD_VAR_DIR": str(var_dir)}, var_dir=var_dir)
    subject = keys.find(token)
    if subject is None:
        raise PrivacyCliError("no subject for that card: never seen by this platform, or already forgotten")
    url = _nats_url(nats_url, var_dir)
    erased = privacy_events.SubjectErased(
        schema_version=1,
        subject_id=subject.subject_id,
        requested_by=actor or os.environ.get("USER") or "unknown",
        reason=reason,
    )
    erased.erased_at.FromDatetime(datetime.now(UTC))
    appended = asyncio.run(_record(url, erased))
    keys.forget(token)
    note = "" if appended else " (SubjectErased was already recorded by an earlier run)"
    out.print(f"forgot subject {subject.subject_id}: its key is destroyed; recorded SubjectErased on {STREAM}{note}")
