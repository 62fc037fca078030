"""The audit timeline (``fraudctl audit timeline``): who changed which model, when and why, from the log alone.

Pure: stored envelopes of MODELS, MONITOR, LABELS (LabelReported: who labelled which transaction, from which
kind of source), AUDIT (AuditCommandRun), PRIVACY (SubjectErased) and ACCESS (RoleGranted / RoleRevoked: who
could do what, from when) become `TimelineEntry` rows, merged by event time (the envelope's ``time``
attribute), ties broken by stream (`STREAM_ORDER`) then sequence, and filtered by an inclusive time window and
a model name. Reading the streams is the caller's job. Events that carry no actor (validation, drift,
proposals) name their producer, the envelope's ``source``. Since issue 13 the actors are authenticated
principal ids (``user:alice``); older events carry the free text their callers gave, and older labels read as
principal ``unknown``, source kind unspecified (`fraudshared.features.labels.upcast`, as every label reader).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError, Message

from fraud.access.v1 import access_events_pb2 as access_events
from fraud.events.v1 import audit_events_pb2 as audit_events
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import monitor_events_pb2 as monitor_events
from fraud.events.v1 import privacy_events_pb2 as privacy_events
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared.events.envelope import Envelope, EnvelopeError, format_time
from fraudshared.features.labels import upcast

# Within one instant: the change itself (MODELS), what the monitor made of it, then who looked (AUDIT).
STREAM_ORDER = ("MODELS", "MONITOR", "LABELS", "PRIVACY", "ACCESS", "AUDIT")
_SHA = 12  # hex digits of a sha256 shown in the "what" column


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One row of the timeline: an event, who caused it and what it changed or why.

    Attributes:
        time: Event time (the envelope's ``time``, UTC).
        stream: Stream the event is stored on.
        seq: Its stream sequence.
        kind: Event type without package, e.g. ``ModelApproved``.
        model: Model name, or "" for events about no model (audit command runs).
        version: Model version ("from -> to" for a rollback), or "".
        who: The person or producer responsible.
        what: What happened and why, one line.
    """

    time: datetime
    stream: str
    seq: int
    kind: str
    model: str
    version: str
    who: str
    what: str

    def sort_key(self) -> tuple[datetime, int, str, int]:
        rank = STREAM_ORDER.index(self.stream) if self.stream in STREAM_ORDER else len(STREAM_ORDER)
        return self.time, rank, self.stream, self.seq

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (time as RFC 3339 UTC with microseconds)."""
        return {
            "time": format_time(self.time),
            "stream": self.stream,
            "seq": self.seq,
            "kind": self.kind,
            "model": self.model,
            "version": self.version,
            "who": self.who,
            "what": self.what,
        }


@dataclass(frozen=True, slots=True)
class _Row:
    model: str
    version: str
    who: str
    what: str


def _stamp(value: Any) -> str:
    return format_time(value.ToDatetime(UTC)) if value.seconds or value.nanos else "?"


def _pairs(values: Any, limit: int = 4) -> str:
    items = sorted(values.items())
    text = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit])
    return text + (f", +{len(items) - limit} more" if len(items) > limit else "")


def _registered(e: model_events.ModelRegistered, _: Envelope) -> _Row:
    parts = [f"registered artifact {e.artifact_sha256[:_SHA] or '?'}"]
    parts.append(f"dataset {e.dataset_sha256[:_SHA] or '?'}")
    if e.feature_set_version:
        parts.append(f"feature set {e.feature_set_version}")
    if e.code_revision:
        parts.append(f"code {e.code_revision[:_SHA]}")
    what = ", ".join(parts)
    if e.HasField("thresholds"):
        what += f"; thresholds review >= {e.thresholds.review:g}, decline >= {e.thresholds.decline:g}"
    if e.metrics:
        what += f"; metrics {_pairs(e.metrics)}"
    return _Row(e.model_name, e.version, e.registered_by, what)


def _validated(e: model_events.ModelValidated, env: Envelope) -> _Row:
    return _Row(e.model_name, e.version, env.source, f"validated: {_pairs(e.checks) or 'no checks recorded'}")


def _approved(e: model_events.ModelApproved, _: Envelope) -> _Row:
    return _Row(e.model_name, e.version, e.approver, "approved" + (f": {e.comment}" if e.comment else ""))


def _deployed(e: model_events.ModelDeployed, _: Envelope) -> _Row:
    role = model_events.DeploymentRole.Name(e.role).removeprefix("DEPLOYMENT_ROLE_").lower()
    what = f"deployed as {role}" + (f" ({e.canary_percent}% of traffic)" if e.canary_percent else "")
    if e.triton_model_name:
        what += f" to Triton model {e.triton_model_name}"
    return _Row(e.model_name, e.version, e.deployed_by, what)


def _promoted(e: model_events.ModelPromoted, _: Envelope) -> _Row:
    what = "promoted to champion" + (f" (replacing {e.previous_version})" if e.previous_version else "")
    return _Row(e.model_name, e.version, e.promoted_by, what + (f": {e.reason}" if e.reason else ""))


def _rolled_back(e: model_events.ModelRolledBack, _: Envelope) -> _Row:
    what = f"rolled back from {e.from_version} to {e.to_version}" + (f": {e.reason}" if e.reason else "")
    return _Row(e.model_name, f"{e.from_version} -> {e.to_version}", e.rolled_back_by, what)


def _retired(e: model_events.ModelRetired, _: Envelope) -> _Row:
    return _Row(e.model_name, e.version, e.retired_by, "retired" + (f": {e.reason}" if e.reason else ""))


def _drift(e: monitor_events.DriftDetected, env: Envelope) -> _Row:
    severity = monitor_events.DriftSeverity.Name(e.severity).removeprefix("DRIFT_SEVERITY_").lower()
    what = f"drift on {e.feature or 'the score'}: PSI {e.psi:.3f} ({severity})"
    if e.HasField("window_start") or e.HasField("window_end"):
        what += f", window {_stamp(e.window_start)} .. {_stamp(e.window_end)}"
    return _Row(e.model_name, e.version, env.source, what)


def _proposed(e: monitor_events.RemediationProposed, env: Envelope) -> _Row:
    autonomy = monitor_events.AutonomyLevel.Name(e.autonomy_level).removeprefix("AUTONOMY_LEVEL_").lower()
    what = f"proposed {e.kind or 'remediation'} {e.proposal_id} (autonomy {autonomy})"
    if e.evidence:
        what += f"; evidence {_pairs(e.evidence)}"
    return _Row(e.model_name, e.version, env.source, what)


def _applied(e: monitor_events.RemediationApplied, _: Envelope) -> _Row:
    what = f"applied {e.kind or 'remediation'} {e.proposal_id}" + (f": {e.result}" if e.result else "")
    return _Row("", "", e.applied_by, what)  # the model comes from its proposal (`to_entry`)


def _command(e: audit_events.AuditCommandRun, _: Envelope) -> _Row:
    arguments = f" ({', '.join(e.arguments)})" if e.arguments else ""
    what = f"ran `{e.command}`{arguments} on {e.host or '?'}: exit {e.exit_code}"
    return _Row("", "", e.actor, what + (f", {e.outcome}" if e.outcome else ""))


def _erased(e: privacy_events.SubjectErased, _: Envelope) -> _Row:
    what = f"erased subject {e.subject_id}: its card token now reads as <erased>"
    return _Row("", "", e.requested_by, what + (f"; reason: {e.reason}" if e.reason else ""))


def _granted(e: access_events.RoleGranted, _: Envelope) -> _Row:
    return _Row("", "", e.granted_by, f"granted role {e.role} to {e.principal}" + (f": {e.reason}" if e.reason else ""))


def _revoked(e: access_events.RoleRevoked, _: Envelope) -> _Row:
    what = f"revoked role {e.role} from {e.principal}"
    return _Row("", "", e.granted_by, what + (f": {e.reason}" if e.reason else ""))


def _source_kind(value: int) -> str:
    if value not in tx_events.LabelSource.values():
        return f"kind {value}"  # a kind newer than this reader
    return tx_events.LabelSource.Name(value).removeprefix("LABEL_SOURCE_").lower()


def _labelled(e: tx_events.LabelReported, _: Envelope) -> _Row:
    label = upcast(e)
    verdict = "fraud" if label.is_fraud else "not fraud"
    what = f"labelled {label.transaction_id or '?'} {verdict} (source {_source_kind(label.label_source)}"
    return _Row("", "", label.principal, what + (f", ref {label.source})" if label.source else ")"))


_READERS: dict[str, tuple[type[Message], Callable[[Any, Envelope], _Row]]] = {
    m.DESCRIPTOR.full_name: (m, f)
    for m, f in (
        (model_events.ModelRegistered, _registered),
        (model_events.ModelValidated, _validated),
        (model_events.ModelApproved, _approved),
        (model_events.ModelDeployed, _deployed),
        (model_events.ModelPromoted, _promoted),
        (model_events.ModelRolledBack, _rolled_back),
        (model_events.ModelRetired, _retired),
        (monitor_events.DriftDetected, _drift),
        (monitor_events.RemediationProposed, _proposed),
        (monitor_events.RemediationApplied, _applied),
        (audit_events.AuditCommandRun, _command),
        (tx_events.LabelReported, _labelled),
        (privacy_events.SubjectErased, _erased),
        (access_events.RoleGranted, _granted),
        (access_events.RoleRevoked, _revoked),
    )
}


def to_entry(
    stream: str, seq: int, envelope: Envelope, proposals: Mapping[str, tuple[str, str]] | None = None
) -> TimelineEntry:
    """The timeline row of one stored event.

    An event type the timeline does not know, or a payload that does not parse, still gets a row (an audit
    timeline must not hide what it cannot read), saying so in ``what``.

    Args:
        stream: Stream the event is stored on.
        seq: Its stream sequence.
        envelope: The event as stored.
        proposals: ``proposal_id -> (model, version)``: a RemediationApplied names only its proposal.
    """
    kind = envelope.type.rsplit(".", 1)[-1]
    reader = _READERS.get(envelope.type)
    if reader is None:
        row = _Row("", "", envelope.source, f"event type {envelope.type} (not interpreted by the timeline)")
    else:
        try:
            event = envelope.payload(reader[0])
        except (DecodeError, EnvelopeError) as exc:
            row = _Row("", "", envelope.source, f"unreadable {kind} payload: {exc}")
        else:
            row = reader[1](event, envelope)
            if isinstance(event, monitor_events.RemediationApplied) and proposals:
                row = _Row(*proposals.get(event.proposal_id, ("", "")), row.who, row.what)
    return TimelineEntry(envelope.time, stream, seq, kind, row.model, row.version, row.who or "?", row.what)


def _proposals(events: Iterable[tuple[str, int, Envelope]]) -> dict[str, tuple[str, str]]:
    found = {}
    for _, _, envelope in events:
        if envelope.type == monitor_events.RemediationProposed.DESCRIPTOR.full_name:
            with contextlib.suppress(DecodeError):
                p = envelope.payload(monitor_events.RemediationProposed)
                found[p.proposal_id] = (p.model_name, p.version)
    return found


def build_timeline(
    events: Iterable[tuple[str, int, Envelope]],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    model: str | None = None,
) -> list[TimelineEntry]:
    """Rows of ``(stream, seq, envelope)`` events, in timeline order, within ``start..end`` (inclusive).

    A RemediationApplied takes the model of its RemediationProposed (wherever that falls, even outside the
    window), so a ``model`` filter keeps both. With ``model``, rows about no model (audit command runs) are
    left out.

    Raises:
        ValueError: If ``start`` is after ``end``, or either is naive.
    """
    for moment in (start, end):
        if moment is not None and moment.tzinfo is None:
            raise ValueError("timeline bounds must be timezone-aware")
    if start is not None and end is not None and start > end:
        raise ValueError(f"--from {format_time(start)} is after --to {format_time(end)}")
    stored = list(events)
    proposals = _proposals(stored)
    entries = (to_entry(stream, seq, envelope, proposals) for stream, seq, envelope in stored)
    kept = [
        e
        for e in entries
        if (start is None or e.time >= start) and (end is None or e.time <= end) and (model is None or e.model == model)
    ]
    return sorted(kept, key=TimelineEntry.sort_key)
