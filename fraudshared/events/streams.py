"""Declarative JetStream stream definitions and an idempotent `ensure_streams`.

Every stream is an append-only log: file storage, ``deny_delete`` and ``deny_purge`` (nobody rewrites
history), no rollups, kept forever, and a duplicate window so a retried publish with the same
``Nats-Msg-Id`` is stored once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError

DEFAULT_DUPLICATE_WINDOW_S = 120.0
_ERR_STREAM_NAME_IN_USE = 10058
Outcome = Literal["created", "updated", "unchanged"]


class StreamConfigConflict(RuntimeError):
    """An existing stream's configuration cannot be brought to the declared one."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream as we declare it.

    Attributes:
        name: Stream name, e.g. ``TRANSACTIONS``.
        subjects: Subjects it captures, e.g. ``("fraud.tx.>",)``.
        description: One sentence for operators.
        duplicate_window: Seconds during which a repeated ``Nats-Msg-Id`` is dropped as a duplicate.
        replicas: Replica count (1 embedded; 3 in a cluster).
    """

    name: str
    subjects: tuple[str, ...]
    description: str
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW_S
    replicas: int = 1

    def managed_fields(self) -> dict[str, Any]:
        """The StreamConfig fields this spec owns; anything else on a live stream is left as it is."""
        return {
            "name": self.name,
            "description": self.description,
            "subjects": list(self.subjects),
            "retention": RetentionPolicy.LIMITS,
            "discard": DiscardPolicy.OLD,
            "storage": StorageType.FILE,
            "num_replicas": self.replicas,
            "max_age": 0.0,  # keep forever
            "max_msgs": -1,
            "max_bytes": -1,
            "duplicate_window": self.duplicate_window,
            "deny_delete": True,
            "deny_purge": True,
            "allow_rollup_hdrs": False,
        }

    def to_config(self) -> StreamConfig:
        """A complete StreamConfig for creating the stream."""
        return StreamConfig(**self.managed_fields())


def default_specs(duplicate_window: float = DEFAULT_DUPLICATE_WINDOW_S, replicas: int = 1) -> tuple[StreamSpec, ...]:
    """The platform's streams, one per event family."""
    families = (
        ("TRANSACTIONS", "fraud.tx.>", "Transactions received at the edge (tokenized card, never a PAN)."),
        ("FEATURES", "fraud.features.>", "Point-in-time feature vectors computed per transaction."),
        ("PREDICTIONS", "fraud.predictions.>", "Scores and decisions with model version and inputs."),
        ("LABELS", "fraud.labels.>", "Delayed fraud labels (chargebacks, investigations)."),
        ("MODELS", "fraud.models.>", "Model registry changes: registrations, approvals, deployments."),
        ("AUDIT", "fraud.audit.>", "Signed, chained audit checkpoints over the other streams."),
        ("MONITOR", "fraud.monitor.>", "Drift and performance reports, alerts, remediation actions."),
        ("PRIVACY", "fraud.privacy.>", "Erasures (SubjectErased): which subject was forgotten, by whom, why."),
        ("QUARANTINE", "fraud.quarantine.>", "Events a reader skipped (EventQuarantined): who, where, why."),
        ("ACCESS", "fraud.access.>", "Role grants and revocations (RoleGranted, RoleRevoked): who may do what."),
    )
    return tuple(StreamSpec(name, (subject,), text, duplicate_window, replicas) for name, subject, text in families)


def _differences(live: StreamConfig, wanted: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    diffs: dict[str, tuple[Any, Any]] = {}
    for field, value in wanted.items():
        current = getattr(live, field)
        if field == "subjects":
            same = sorted(current or []) == sorted(value)
        elif isinstance(value, float):
            same = abs(float(current or 0.0) - value) < 1e-6
        else:
            same = current == value
        if not same:
            diffs[field] = (current, value)
    return diffs


async def _ensure_one(js: JetStreamContext, spec: StreamSpec) -> Outcome:
    wanted = spec.managed_fields()
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        try:
            await js.add_stream(spec.to_config())
            return "created"
        except APIError as exc:  # lost a creation race to another process; compare with theirs below
            if exc.err_code != _ERR_STREAM_NAME_IN_USE:
                raise
            info = await js.stream_info(spec.name)
    diffs = _differences(info.config, wanted)
    if not diffs:
        return "unchanged"
    for immutable in ("storage", "retention"):
        if immutable in diffs:
            live, want = diffs[immutable]
            raise StreamConfigConflict(f"stream {spec.name}: {immutable} is {live!r}, declared {want!r}; not updatable")
    try:
        await js.update_stream(info.config.evolve(**wanted))
    except APIError as exc:
        raise StreamConfigConflict(f"stream {spec.name}: cannot update {sorted(diffs)}: {exc.description}") from exc
    return "updated"


async def ensure_streams(js: JetStreamContext, specs: Iterable[StreamSpec] | None = None) -> dict[str, Outcome]:
    """Creates missing streams and updates drifted ones; idempotent and safe to run from every service.

    Fields we do not manage (metadata, compression, ...) are kept as they are on the live stream.

    Args:
        js: JetStream context.
        specs: Streams to ensure; `default_specs` when omitted.

    Returns:
        Outcome per stream name: ``created``, ``updated`` or ``unchanged``.

    Raises:
        StreamConfigConflict: If a live stream differs in something that cannot be updated (storage type,
            retention) or the server refuses the update.
    """
    chosen: Sequence[StreamSpec] = tuple(specs) if specs is not None else default_specs()
    return {spec.name: await _ensure_one(js, spec) for spec in chosen}
