"""``fraudctl audit timeline``: every model change, approval, threshold, remediation, label and audit run, in order.

Reads MODELS, MONITOR, PRIVACY, the role grants on ACCESS, the labels on LABELS (who reported what, from which
source; not with ``--model``: a label names no model) and the AuditCommandRun records on AUDIT (docs/audit.md,
"Timeline"); turning them into rows is `fraudshared.audit.timeline`. A platform from before issue 13 has no
ACCESS stream: the timeline then reads without it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from nats.js import JetStreamContext
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NotFoundError
from rich.markup import escape
from rich.table import Table

from fraudctl.audit_cli import (
    FAILED,
    OK,
    Actor,
    NatsUrl,
    VarDir,
    app,
    err,
    out,
    parse_time,
    print_findings,
    run_audit,
)
from fraudshared import subjects
from fraudshared.audit.check import AuditInputError
from fraudshared.audit.timeline import TimelineEntry, build_timeline
from fraudshared.events.envelope import Envelope
from fraudshared.events.store import EventStore, UnreadableEvent

AUDIT_COMMANDS = "fraud.audit.commands.>"
OPTIONAL_STREAMS = frozenset({"ACCESS"})  # created by the services since issue 13
_MODEL_NAME_RE = re.compile(r"[A-Za-z0-9_-]+")


def _sources(model: str | None) -> list[tuple[str, str]]:
    """(stream, subject filter) to read; one model's lifecycle events share one subject."""
    models = subjects.model_events(model) if model else subjects.MODELS_ALL
    sources = [
        ("MODELS", models),
        ("MONITOR", "fraud.monitor.>"),
        ("AUDIT", AUDIT_COMMANDS),
        ("PRIVACY", subjects.PRIVACY_ALL),
        ("ACCESS", subjects.ACCESS_ALL),
    ]
    if model is None:  # one model's timeline drops label rows anyway: do not read the whole stream for none
        sources.append(("LABELS", subjects.LABELS_ALL))
    return sources


async def _read(js: JetStreamContext, model: str | None) -> tuple[list[tuple[str, int, Envelope]], list[str]]:
    """Every event of the timeline's streams, as stored, and one line per message that is not an envelope.

    Raises:
        AuditInputError: If a stream does not exist.
        RuntimeError: If a stream cannot be read.
    """
    store, events, unreadable = EventStore(js), [], []

    def note(event: UnreadableEvent) -> None:  # named and skipped: the rest of the timeline still reads
        unreadable.append(f"{event.stream} seq {event.seq} is unreadable: {event.error}")

    for stream, subject in _sources(model):
        try:
            async for stored in store.read_subject(stream, subject, on_unreadable=note):
                events.append((stream, stored.seq, stored.envelope))
        except NotFoundError:
            if stream in OPTIONAL_STREAMS:
                continue
            raise AuditInputError(f"there is no stream {stream!r}") from None
        except (JetStreamError, TimeoutError, OSError) as exc:
            raise RuntimeError(f"could not read {stream}: {exc or type(exc).__name__}") from exc
    return events, unreadable


@app.command()
def timeline(
    ctx: typer.Context,
    from_time: Annotated[str | None, typer.Option("--from", help="Event time from (ISO 8601, inclusive).")] = None,
    to_time: Annotated[str | None, typer.Option("--to", help="Event time to (ISO 8601, inclusive).")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model's events.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
    nats_url: NatsUrl = None,
    actor: Actor = None,
    var_dir: VarDir = Path("var"),
) -> None:
    """Who changed which model (registration, approvals, deployments, remediations) or granted which role, when, why."""

    async def body(js: JetStreamContext) -> tuple[int, str]:
        start = parse_time(from_time) if from_time else None
        end = parse_time(to_time) if to_time else None
        if start and end and start > end:
            raise AuditInputError(f"--from {from_time} is after --to {to_time}")
        if model is not None and not _MODEL_NAME_RE.fullmatch(model):
            raise AuditInputError(f"{model!r} is not a model name (letters, digits, '-' and '_')")
        try:
            events, unreadable = await _read(js, model)
        except RuntimeError as exc:
            return FAILED, str(exc)
        if model is not None and not any(stream == "MODELS" for stream, _, _ in events):
            raise AuditInputError(f"unknown model {model!r}: no event on {subjects.model_events(model)}")
        entries = build_timeline(events, start=start, end=end, model=model)
        if as_json:
            for entry in entries:
                print(json.dumps(entry.to_json(), ensure_ascii=False))  # plain: no rich wrapping of JSON lines
        else:
            _print_timeline(entries)
        text = f"timeline: {len(entries)} event(s)" + print_findings(unreadable, "unreadable event(s)", err)
        return (FAILED if unreadable else OK), text

    run_audit(ctx, nats_url, var_dir, actor, body)


def _print_timeline(entries: list[TimelineEntry]) -> None:
    table = Table("time", "stream#seq", "kind", "model/version", "who", "what / why", title="audit timeline")
    for e in entries:
        subject = f"{e.model} {e.version}".strip() or "-"
        table.add_row(
            e.time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            f"{e.stream}#{e.seq}",
            e.kind,
            escape(subject),
            escape(e.who),
            escape(e.what),
        )
    out.print(table)
    out.print(f"{len(entries)} event(s)", highlight=False)
