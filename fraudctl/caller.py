"""Who `fraudctl` calls the platform as: the global ``--as NAME`` (or FRAUD_CREDENTIAL / FRAUD_TOKEN_FILE).

Every command that calls a service takes its channel from here, so the credential is resolved once, the same
way everywhere (`fraudshared.identity.client.resolve_credential`), and a refusal reads as one line that names
the cause and what to do (`explain_rpc_error`), never as a traceback. Commands that read NATS directly (the
audit CLIs, the demo's counts) connect with TLS as the auditor (read-only) unless told otherwise (`nats_tls`).
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import typer
from rich.console import Console
from rich.markup import escape

from fraudctl.procfile import load_plan, token_address
from fraudshared.config import ConfigError
from fraudshared.identity.client import ClientCredential, resolve_credential, secure_aio_channel, secure_channel
from fraudshared.identity.tls import ssl_context

_as_name: str | None = None  # set by the global --as option (fraudctl.cli)
READ_ONLY = "auditor"  # the default credential of the commands that only read the log


class CredentialError(RuntimeError):
    """No usable credential, or the platform refused it; the message is one line that says what to do."""


def set_as(name: str | None) -> None:
    """Records the global ``--as NAME`` (a directory under ``<var>/credentials/``)."""
    global _as_name
    _as_name = name


def as_name() -> str | None:
    """The global ``--as NAME``, if given."""
    return _as_name


def credential(var_dir: Path, name: str | None = None, default: str | None = None) -> ClientCredential:
    """The credential to call with.

    ``name`` (the demo's roles), else ``--as``, else FRAUD_CREDENTIAL / FRAUD_TOKEN_FILE, else ``default``
    (a name under ``<var>/credentials/``: the auditor for the read-only commands).

    Raises:
        CredentialError: If none is configured or its files cannot be read (one line naming which).
    """
    chosen = name or _as_name
    try:
        return resolve_credential(chosen, var_dir.resolve())
    except ConfigError as exc:
        if chosen is not None or default is None:
            raise CredentialError(str(exc)) from None
    try:
        return resolve_credential(default, var_dir.resolve())
    except ConfigError as exc:
        raise CredentialError(str(exc)) from None


NO_TOKENS = (
    "this platform accepts no bearer tokens: start it with FRAUD_OIDC_ISSUER, FRAUD_OIDC_AUDIENCE and "
    "FRAUD_OIDC_JWKS_URL set (`fraudctl down`, then `fraudctl up`), or call with a certificate: --as <name>"
)


def dial_address(address: str, var_dir: Path, cred: ClientCredential) -> str:
    """Where to dial ``address`` with ``cred``: a bearer token goes to the service's token port.

    A certificate dials ``address`` itself. A token dials the token port the plan under ``var_dir`` gives the
    service at ``address``; an address that is no service of that plan (another platform, or already a token
    port) is dialled as given.

    Raises:
        CredentialError: If the credential is a token and that service was started without OIDC.
    """
    if cred.token is None:
        return address
    plan = load_plan(var_dir)
    if plan is None:
        return address
    for name, comp in plan.components.items():
        if address in (plan.address(name), f"localhost:{comp.port}") and "grpc" in comp.ports:
            found = token_address(plan, name)
            if found is None:
                raise CredentialError(NO_TOKENS)
            return found
    return address


def channel(
    address: str, var_dir: Path, *, default: str | None = None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A blocking channel to ``address`` (its token port for a bearer token) as the caller (`credential`)."""
    cred = credential(var_dir, default=default)
    return secure_channel(dial_address(address, var_dir, cred), cred, options=list(options))


def aio_channel(
    address: str, var_dir: Path, name: str | None = None, *, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` (its token port for a bearer token) as ``name`` (or the caller)."""
    cred = credential(var_dir, name)
    return secure_aio_channel(dial_address(address, var_dir, cred), cred, options=list(options))


def nats_tls(var_dir: Path, name: str | None = None) -> dict[str, Any]:
    """``nats.connect`` keyword arguments for a TLS connection as ``name``, ``--as``, FRAUD_CREDENTIAL or the auditor.

    Raises:
        CredentialError: If that credential is a bearer token (NATS takes certificates only) or is missing.
    """
    # asyncio warns that nats-py's protocol returns True from eof_received under TLS: harmless, not for the user.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    cred = credential(var_dir, name, default=READ_ONLY)
    if cred.files is None:
        raise CredentialError("NATS takes a client certificate, not a bearer token: pass --as <name>")
    context: ssl.SSLContext = ssl_context(cred.files)
    return {"tls": context, "tls_hostname": "localhost"}


def explain_rpc_error(exc: grpc.RpcError) -> str:
    """One line for a failed call: the status, the server's reason, and what to do about it."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    who = f"--as {_as_name}" if _as_name else "this credential"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"UNAUTHENTICATED: {details}; pass --as <name> (see <var>/credentials/) or set FRAUD_CREDENTIAL "
            "or FRAUD_TOKEN_FILE"
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"PERMISSION_DENIED: {details}; call as a principal granted that role (not {who})"
    lowered = details.lower()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN):
        if "certificate_verify_failed" in lowered or "handshake" in lowered:
            return (
                f"{code.name}: TLS handshake failed: the server's certificate does not verify against the ca.pem of "
                f"{who} (a credential of another CA, or not the platform); use one from <var>/credentials/"
            )
        if "socket closed" in lowered or "connection reset" in lowered:
            return (
                f"{code.name}: the server closed the connection during the TLS handshake: it does not accept the "
                f"certificate of {who} (issued by another CA?); use one from <var>/credentials/"
            )
    return f"{code.name}: {details}"


class CliError(RuntimeError):
    """A problem on this side of a call (no running platform, a bad argument); the message is one line."""


F = TypeVar("F", bound=Callable[..., Any])
_err = Console(stderr=True)


def one_line_errors(command: F) -> F:
    """Wraps a CLI command: a refused call, a missing credential or a `CliError` prints one red line, exit 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except grpc.RpcError as exc:
            _err.print(f"[red]error:[/] {escape(explain_rpc_error(exc))}", highlight=False, soft_wrap=True)
        except (CliError, CredentialError) as exc:
            _err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)

    return run  # type: ignore[return-value]


def service_address(service: str, explicit: str | None, var_dir: Path) -> str:
    """``explicit`` (an option such as ``--governance``) if given, else the address of the running ``service``.

    Raises:
        CliError: If neither is there.
    """
    if explicit:
        return explicit
    plan = load_plan(var_dir)
    if plan is None or service not in plan.components:
        raise CliError(f"no running platform under {var_dir} (start it with `fraudctl up`) and no --{service}")
    return plan.address(service)
