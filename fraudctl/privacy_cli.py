"""``fraudctl privacy forget``: erase a cardholder through ingest's ForgetCardholder RPC (crypto-shredding).

The command holds no key and touches neither NATS nor the key store: it calls IngestService.ForgetCardholder
as the caller (``fraudctl --as privacy-officer ...``, FRAUD_CREDENTIAL or FRAUD_TOKEN_FILE); ingest checks the
privacy-officer role, records SubjectErased with the authenticated principal and destroys the card's key.
Running it again after a cut-short run is safe (each step is idempotent). The PAN (read from stdin) goes to
ingest over TLS and nowhere else; neither it nor the card token reaches the output. See docs/privacy.md.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import grpc
import typer
from rich.console import Console

from fraud.ingest.v1 import ingest_service_pb2 as ingest
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl import caller
from fraudctl.procfile import load_plan
from fraudctl.runtime import RuntimeErrorWithHint
from fraudshared.pan_token import luhn_valid

app = typer.Typer(no_args_is_help=True, help="Privacy: erase a cardholder (crypto-shredding, docs/privacy.md).")
out = Console()
STREAM = "PRIVACY"
TIMEOUT_S = 30.0


class PrivacyCliError(RuntimeErrorWithHint):
    """A one-line failure of a privacy command (printed without a traceback, exit 1)."""


def _removed(what: str) -> Callable[[str | None], str | None]:
    """A callback refusing an option that is gone, with what to do instead."""

    def refuse(value: str | None) -> str | None:
        if value is not None:
            raise typer.BadParameter(what)
        return value

    return refuse


def _request(card_token: str | None, pan_stdin: bool, reason: str) -> ingest.ForgetCardholderRequest:
    if bool(card_token) == pan_stdin:
        raise PrivacyCliError("give exactly one of --card-token or --pan-stdin")
    if card_token:
        return ingest.ForgetCardholderRequest(card_token=card_token, reason=reason)
    pan = sys.stdin.readline().strip()
    if not (pan.isdigit() and 12 <= len(pan) <= 19 and luhn_valid(pan)):
        raise PrivacyCliError("stdin does not hold a PAN (12-19 digits passing the Luhn check)")  # never echo it
    return ingest.ForgetCardholderRequest(pan=pan, reason=reason)


def ingest_address(address: str | None, var_dir: Path) -> str:
    """``--ingest`` if given, else the address of the running platform's ingest under ``var_dir``."""
    if address:
        return address
    plan = load_plan(var_dir)
    if plan is None or "ingest" not in plan.components:
        raise PrivacyCliError(f"no running platform under {var_dir} (start it with `fraudctl up`) and no --ingest")
    return plan.address("ingest")


@app.command()
def forget(
    card_token: Annotated[str | None, typer.Option("--card-token", help="The card's token (ct_...).")] = None,
    pan_stdin: Annotated[
        bool, typer.Option("--pan-stdin", help="Read the PAN from stdin; ingest tokenizes it (never echoed).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (recorded), e.g. a request reference.")] = "erasure request",
    address: Annotated[
        str | None,
        typer.Option("--ingest", envvar="FRAUD_INGEST_ADDR", help="host:port; default: the running platform's."),
    ] = None,
    var_dir: Annotated[Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="Runtime state.")] = Path("var"),
    actor: Annotated[
        str | None,
        typer.Option(
            hidden=True, callback=_removed("the requester is the authenticated caller: use `fraudctl --as NAME ...`")
        ),
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", hidden=True, callback=_removed("privacy forget calls ingest now; use --ingest")),
    ] = None,
) -> None:
    """Destroy a card's data key: its sealed card token reads as <erased>; the log still verifies and replays."""
    request = _request(card_token, pan_stdin, reason)
    target = ingest_address(address, var_dir)
    try:
        with caller.channel(target, var_dir) as channel:
            answer = ingest_grpc.IngestServiceStub(channel).ForgetCardholder(request, timeout=TIMEOUT_S)
    except grpc.RpcError as exc:
        raise PrivacyCliError(caller.explain_rpc_error(exc)) from None
    except caller.CredentialError as exc:
        raise PrivacyCliError(str(exc)) from None
    note = "" if answer.recorded else " (SubjectErased was already recorded by an earlier run)"
    out.print(f"forgot subject {answer.subject_id}: its key is destroyed; recorded SubjectErased on {STREAM}{note}")
