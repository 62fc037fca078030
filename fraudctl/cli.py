"""``fraudctl``: the platform's command line, and the point where its command groups are composed.

The runtime commands (up, down, status, logs) live in `fraudctl.runtime`; other command groups are
registered at the end of this module. Errors of the types in `FRIENDLY_ERRORS` print one line (plus the
error's ``details`` lines, if any) and exit 1, without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import grpc
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from fraudctl import caller, runtime
from fraudctl.procfile import ALL
from fraudml.errors import FraudMLError
from fraudshared.config import ConfigError

console = Console()
err_console = Console(stderr=True)

# Extend with other commands' own error types (each should carry a one-line message).
FRIENDLY_ERRORS: tuple[type[Exception], ...] = (
    runtime.RuntimeErrorWithHint,
    FraudMLError,
    caller.CredentialError,
    ConfigError,
)


class _FriendlyErrors(TyperGroup):
    """Turns our own errors into one red line and exit code 1, for every command and sub-app."""

    def invoke(self, ctx: Any) -> Any:  # ctx: typer's vendored click Context, not a public type
        try:
            return super().invoke(ctx)
        except FRIENDLY_ERRORS as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            for line in getattr(exc, "details", ()):
                err_console.print(line, markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except grpc.RpcError as exc:  # a refused or failed call: what and why, on one line
            message = escape(caller.explain_rpc_error(exc))
            err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_FriendlyErrors,
    no_args_is_help=True,
    add_completion=False,
    help="Run and operate the card-fraud platform locally.",
)


@app.callback()
def main(
    as_name: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            help="Call as the development principal NAME (<var>/credentials/NAME: scorer, approver, admin...); "
            "else FRAUD_CREDENTIAL (a dir with ca.pem cert.pem key.pem) or FRAUD_TOKEN_FILE (a JWT).",
        ),
    ] = None,
) -> None:
    """Run and operate the card-fraud platform locally."""
    caller.set_as(as_name)


VarDir = Annotated[
    Path, typer.Option("--var-dir", envvar="FRAUD_VAR_DIR", help="State, logs and run files.", show_default=True)
]


@app.command()
def up(
    var_dir: VarDir = Path("var"),
    only: Annotated[
        str | None, typer.Option(help=f"Comma-separated subset of: {','.join(ALL)} (e.g. nats,triton).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait until every component is healthy.")] = 90.0,
) -> None:
    """Start NATS, Triton and the services under supervisord (which restarts them), and wait until all are healthy."""
    components = [c.strip() for c in only.split(",") if c.strip()] if only else list(ALL)
    runtime.up(var_dir, components, timeout=timeout, console=console)


@app.command()
def down(var_dir: VarDir = Path("var")) -> None:
    """Stop everything `up` started (idempotent)."""
    runtime.down(var_dir, console=console)


@app.command()
def status(var_dir: VarDir = Path("var")) -> None:
    """Show address, pid, health, uptime, supervisor state and restarts per component; exit 1 unless all healthy."""
    raise typer.Exit(runtime.status(var_dir, console=console))


@app.command()
def logs(
    component: Annotated[
        str | None, typer.Argument(help=f"One of: {', '.join(runtime.LOG_NAMES)}; each, prefixed, when omitted.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many past lines to print.")] = 100,
    var_dir: VarDir = Path("var"),
) -> None:
    """Print a component's log (var/log/<component>.log), or the last lines of each, prefixed with its name."""
    try:
        runtime.logs(var_dir, component, follow=follow, lines=lines)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


# ---- Other command groups register here (demo, train, model ...), e.g.:
#   from fraudctl.model_cli import app as model_app
#   app.add_typer(model_app, name="model")


@app.command()
def demo(
    var_dir: VarDir = Path("var"),
    transactions: Annotated[
        int, typer.Option(min=1, help="Newest transactions to stream through ScoreTransaction (labels follow).")
    ] = 7000,
    customers: Annotated[int, typer.Option(min=10, help="Synthetic customers (and terminals).")] = 400,
    days: Annotated[int, typer.Option(min=21, help="Days of synthetic history (train / 7 delay / 7 test).")] = 35,
    keep_up: Annotated[bool, typer.Option(help="Leave the platform running afterwards.")] = False,
) -> None:
    """Walking skeleton: up, train, register+deploy to Triton, stream transactions over gRPC, table, down."""
    from fraudctl.demo import run_demo  # training stack imported only for this command

    run_demo(var_dir, console, transactions=transactions, customers=customers, days=days, keep_up=keep_up)


from fraudctl.model_cli import app as model_app  # noqa: E402

app.add_typer(model_app, name="model")

from fraudctl.data_cli import app as data_app  # noqa: E402
from fraudctl.train_cli import train as train_command  # noqa: E402

app.add_typer(data_app, name="data")
app.command(name="train")(train_command)

from fraudctl.audit_cli import app as audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")

from fraudctl.access_cli import app as access_app  # noqa: E402

app.add_typer(access_app, name="access")

from fraudctl.privacy_cli import app as privacy_app  # noqa: E402
from fraudshared.privacy import PrivacyError  # noqa: E402

app.add_typer(privacy_app, name="privacy")
FRIENDLY_ERRORS += (PrivacyError,)
