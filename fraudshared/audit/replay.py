"""Re-derive recorded decisions from the log alone (``fraudctl audit replay``, docs/audit.md).

For each selected PredictionMade: the feature vector is recomputed by `FeatureEngine` folded over the FEATURES
stream in stream order (transactions and the labels folded between them; the events of the partitions one
features owner held, all by default) and compared with the recorded FeatureVectorComputed and with the vector
the model was given; the model version it names must be registered on MODELS with the same artifact sha256;
the artifact (fetched by content address, sha256 checked) scores the recorded vector with onnxruntime; that
version's registered thresholds give the decision; the explainer artifact, when registered, gives the reason
codes. Safe-mode decisions replay to REVIEW.

The first event on a transaction's subject is the record: a later PredictionMade (or FeatureVectorComputed,
LabelApplied) there is a conflict, reported and neither replayed nor folded. Each label that took effect has
its own subject (``fraud.features.label.<p>.<tx>.<LABELS sequence>``); a LabelApplied on the old form (no
sequence) after any label of its transaction is a conflict too, as the features service's rebuild has it. An
event that cannot be read is reported by stream and sequence and skipped; nothing unread is called a match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import numpy as np
from google.protobuf.message import DecodeError, Message
from nats.js import JetStreamContext

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import model_events_pb2 as model_events
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudshared import subjects
from fraudshared.audit.check import AuditInputError, recorded_decision
from fraudshared.audit.decision_rules import (
    SAFE_MODE_CODE,
    SCORE_TOLERANCE,
    decide,
    decision_name,
    expected_reason_codes,
)
from fraudshared.audit.records import FirstSeen, transaction_of_subject
from fraudshared.audit.replay_models import ArtifactSource, Models
from fraudshared.events.envelope import EnvelopeError
from fraudshared.events.store import EventStore, StoredEvent, UnreadableEvent
from fraudshared.features import FeatureEngine, recorded

_REGISTERED = model_events.ModelRegistered.DESCRIPTOR.full_name
_PREDICTION = tx_events.PredictionMade.DESCRIPTOR.full_name
Registry = dict[tuple[str, str], model_events.ModelRegistered]
M = TypeVar("M", bound=Message)


@dataclass
class ReplayedDecision:
    """One recorded decision next to its re-derivation."""

    transaction_id: str
    recorded: tx_events.PredictionMade
    score: float | None = None
    decision: int = common.DECISION_UNSPECIFIED
    reason_codes: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def model(self) -> str:
        ref = self.recorded.model
        return f"{ref.name} {ref.version}" if ref.name else "safe-mode rules"


@dataclass
class Replay:
    """Replayed decisions, and what the log held that is not one: conflicts and unreadable events (one line each)."""

    decisions: list[ReplayedDecision]
    findings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and all(d.ok for d in self.decisions)


class _Findings:
    """Collects unreadable events of the streams replay reads (the tolerant read's callback and payloads)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def unreadable(self, event: UnreadableEvent) -> None:
        self.lines.append(f"{event.stream} seq {event.seq} is unreadable: {event.error}")

    def payload(self, stream: str, stored: StoredEvent, message_type: type[M]) -> M | None:
        try:
            return stored.envelope.payload(message_type)
        except (EnvelopeError, DecodeError) as exc:
            self.lines.append(f"{stream} seq {stored.seq} is unreadable: {exc or type(exc).__name__}")
            return None


class _Labelled:
    """Transactions with a label on the ``<tx>.<LABELS sequence>`` subject form, and the first one's sequence."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def met(self, name: str, seq: int) -> None:
        """Notes the record on a label subject ``name`` (``<tx>`` or ``<tx>.<LABELS sequence>``)."""
        transaction_id, _, labels_seq = name.partition(".")
        if labels_seq:
            self._first.setdefault(transaction_id, seq)

    def admits(self, name: str, seq: int, subject: str, findings: _Findings) -> bool:
        """False (and a finding) for an old-form label subject after a label of its transaction.

        Such an event can only come from a writer that skipped the append guard: a forged relabel, not folded.
        """
        if "." in name or name not in self._first:
            return True
        findings.lines.append(
            f"FEATURES seq {seq}: a label on the old subject form {subject} after a label of its transaction "
            f"(seq {self._first[name]}) conflicts with it and is not folded"
        )
        return False


async def _predictions(
    js: JetStreamContext, transaction_id: str | None, window: tuple[datetime, datetime] | None, findings: _Findings
) -> list[tx_events.PredictionMade]:
    if transaction_id is not None:
        found = await recorded_decision(js, transaction_id)
        assert found.event is not None  # recorded_decision raises otherwise
        findings.lines += [str(c) for c in found.conflicts]
        return [found.event]
    assert window is not None
    lo, hi = (int(t.timestamp() * 1_000_000) for t in window)
    selected, seen = [], FirstSeen("PREDICTIONS")
    store = EventStore(js)
    async for stored in store.read_subject(
        "PREDICTIONS", subjects.PREDICTIONS_MADE_ALL, on_unreadable=findings.unreadable
    ):
        if stored.envelope.type != _PREDICTION or not seen.first(
            transaction_of_subject(stored.subject), stored.seq, stored.subject
        ):
            continue
        prediction = findings.payload("PREDICTIONS", stored, tx_events.PredictionMade)
        if prediction is not None and lo <= prediction.event_time.ToMicroseconds() <= hi:
            selected.append(prediction)
    findings.lines += [str(c) for c in seen.conflicts]
    if not selected and not findings.lines:
        raise AuditInputError(f"no decision was recorded with an event time from {window[0]} to {window[1]}")
    return selected


async def _registered(js: JetStreamContext, findings: _Findings) -> Registry:
    registered: Registry = {}
    async for stored in EventStore(js).read_subject("MODELS", subjects.MODELS_ALL, on_unreadable=findings.unreadable):
        if stored.envelope.type == _REGISTERED:
            event = findings.payload("MODELS", stored, model_events.ModelRegistered)
            if event is not None:
                registered.setdefault((event.model_name, event.version), event)  # the first registration
    return registered


async def _features(
    js: JetStreamContext, wanted: set[str], partitions: set[int] | None, findings: _Findings
) -> dict[str, tuple[list[float], list[float]]]:
    """(recorded, recomputed) vector per wanted transaction: one fold of FEATURES in stream order.

    A second FeatureVectorComputed or LabelApplied of one transaction is a conflict: reported, not folded.
    """
    engine, left, seen, labelled = FeatureEngine(), set(wanted), FirstSeen("FEATURES"), _Labelled()
    found: dict[str, tuple[list[float], list[float]]] = {}
    events = EventStore(js).read_subject("FEATURES", subjects.FEATURES_ALL, on_unreadable=findings.unreadable)
    try:
        async for stored in events:
            if not left:
                break
            parts = stored.subject.split(".", 4)  # fraud.features.<computed|label>.<partition>.<transaction id>
            if len(parts) < 5 or not parts[3].isdigit():  # no writer of ours puts an event there
                findings.lines.append(
                    f"FEATURES seq {stored.seq} is on {stored.subject!r}, not a transaction's subject"
                )
                continue
            kind, partition = parts[2], int(parts[3])
            if partitions is not None and partition not in partitions:
                continue
            name = transaction_of_subject(stored.subject)
            if kind == "label" and not labelled.admits(name, stored.seq, stored.subject, findings):
                continue
            if not seen.first(f"{kind}:{name}", stored.seq, stored.subject):
                continue
            if kind == "label":
                labelled.met(name, stored.seq)
            try:
                event = recorded.parse(stored.envelope)
            except (EnvelopeError, DecodeError) as exc:
                findings.lines.append(f"FEATURES seq {stored.seq} is unreadable: {exc or type(exc).__name__}")
                continue
            if isinstance(event, tx_events.FeatureVectorComputed) and event.transaction_id in left:
                tx = recorded.transaction_of(event)
                found[event.transaction_id] = (list(event.values), engine.vector_for(tx).tolist())
                left.discard(event.transaction_id)
            if event is not None:
                recorded.fold(engine, event)
    finally:
        close = getattr(events, "aclose", None)  # stopped early: delete the reader's consumer now
        if close is not None:
            await close()
    findings.lines += [str(c) for c in seen.conflicts]
    return found


async def replay_decisions(
    js: JetStreamContext,
    source: ArtifactSource,
    *,
    transaction_id: str | None = None,
    window: tuple[datetime, datetime] | None = None,
    partitions: set[int] | None = None,
) -> Replay:
    """Replays one transaction's decision, or every decision with an event time in ``window``.

    Raises:
        AuditInputError: If the transaction is unknown or the window holds no decision.
        AuditReadError: If the one transaction's recorded decision cannot be read.
        ReplayError: If an artifact cannot be fetched or does not match its sha256.
    """
    findings = _Findings()
    predictions = await _predictions(js, transaction_id, window, findings)
    registered = await _registered(js, findings)
    vectors = await _features(js, {p.transaction_id for p in predictions}, partitions, findings)
    models = Models(source)
    decisions = [_replay(p, registered, vectors.get(p.transaction_id), models) for p in predictions]
    return Replay(decisions, findings.lines)


def _replay(
    recorded: tx_events.PredictionMade,
    registered: Registry,
    vectors: tuple[list[float], list[float]] | None,
    models: Models,
) -> ReplayedDecision:
    result = ReplayedDecision(recorded.transaction_id, recorded)
    given = np.asarray(recorded.feature_values, dtype=np.float32)
    if vectors is None:
        result.mismatches.append("no FeatureVectorComputed recorded for it (in the replayed partitions)")
    else:
        stored, recomputed = (np.asarray(v, dtype=np.float32) for v in vectors)
        if not np.array_equal(stored, recomputed):
            result.mismatches.append(f"features recomputed from the log differ: {_diff(stored, recomputed)}")
        if not np.array_equal(stored, given):
            result.mismatches.append(f"the model was given other features than recorded: {_diff(stored, given)}")
    if recorded.scoring_path == common.SCORING_PATH_SAFE_MODE_RULES:
        result.decision, result.reason_codes = common.DECISION_REVIEW, [SAFE_MODE_CODE]
    else:
        _rescore(result, recorded, registered, given, models)
    if result.decision != recorded.decision:
        result.mismatches.append(
            f"decision {decision_name(result.decision)} replayed, {decision_name(recorded.decision)} recorded"
        )
    codes = [r.code for r in recorded.reason_codes]
    if result.reason_codes != codes:
        result.mismatches.append(f"reason codes {result.reason_codes} replayed, {codes} recorded")
    return result


def _rescore(
    result: ReplayedDecision,
    recorded: tx_events.PredictionMade,
    registered: Registry,
    values: np.ndarray,
    models: Models,
) -> None:
    ref = recorded.model
    version = registered.get((ref.name, ref.version))
    if version is None:
        result.mismatches.append(f"model {ref.name} {ref.version} is not registered on MODELS")
        return
    if version.artifact_sha256 != ref.artifact_sha256:
        result.mismatches.append(f"artifact {ref.artifact_sha256[:12]}... is not the registered one")
    score = result.score = models.score(version.artifact_sha256, values)
    if not math.isclose(score, recorded.score, rel_tol=0.0, abs_tol=SCORE_TOLERANCE):
        result.mismatches.append(f"score {score:.8f} replayed, {recorded.score:.8f} recorded")
    thresholds = version.thresholds
    if (recorded.thresholds.review, recorded.thresholds.decline) != (thresholds.review, thresholds.decline):
        result.mismatches.append("recorded thresholds are not the registered ones")
    result.decision = decide(score, thresholds.review, thresholds.decline)
    contributions = None
    if version.explainer_artifact_sha256 and result.decision != common.DECISION_APPROVE:
        contributions = models.contributions(version.explainer_artifact_sha256, values)
    result.reason_codes = expected_reason_codes(result.decision, version.feature_names, contributions)


def _diff(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"{a.size} values vs {b.size}"
    index = int(np.flatnonzero(a != b)[0])
    return f"value {index}: {float(a[index])!r} vs {float(b[index])!r}"
