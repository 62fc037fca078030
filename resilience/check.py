"""What one fault cost, from the client's outcomes and the event log: the pure accounting of the report.

Lost: acknowledged (an OK answer) but the log lacks its TransactionReceived or PredictionMade, or the logged
decision (the first PredictionMade on its subject, the record) differs from the one the client was given.
Duplicated: more than one TransactionReceived or PredictionMade for one transaction id, across all partitions.
Recovery: seconds from the kill until decisions succeed again: the first OK answer to a request sent after the
kill and after the last request that never got one. Without that second condition a request answered in the
instant before the platform stopped answering (under honcho, which this harness first measured, everything
stopped a moment after one process died) would count as a recovery 0.01 s after the kill; the literal first
OK answer is reported too (``first_ok_s``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resilience.client import OK, Outcome

RECEIVED = "TransactionReceived"
PREDICTION = "PredictionMade"
PHASES = ("before", "during", "after")


@dataclass(frozen=True)
class LogRecord:
    """One transaction-scoped event as read back: its kind, transaction, stream sequence and decision."""

    kind: str
    transaction_id: str
    seq: int
    decision: str = ""


@dataclass
class Ledger:
    """The log, indexed by transaction id: each id's events of each kind, in stream order."""

    events: dict[tuple[str, str], list[LogRecord]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, records: Iterable[LogRecord]) -> Ledger:
        ledger = cls()
        for record in sorted(records, key=lambda r: (r.kind, r.seq)):
            ledger.events[(record.kind, record.transaction_id)].append(record)
        return ledger

    def count(self, kind: str, transaction_id: str) -> int:
        return len(self.events.get((kind, transaction_id), ()))

    def recorded_decision(self, transaction_id: str) -> str | None:
        found = self.events.get((PREDICTION, transaction_id))
        return found[0].decision if found else None


@dataclass
class Accounting:
    """Lost and duplicated acknowledged decisions of one fault, with the reason per transaction id."""

    lost: dict[str, str] = field(default_factory=dict)
    duplicated: dict[str, str] = field(default_factory=dict)
    logged_unanswered: int = 0  # decided and logged, but the client gave up or failed: not lost, informative


def account(outcomes: Sequence[Outcome], ledger: Ledger) -> Accounting:
    """Checks every request of one fault against the log."""
    result = Accounting()
    for outcome in outcomes:
        tx = outcome.transaction_id
        received, predicted = ledger.count(RECEIVED, tx), ledger.count(PREDICTION, tx)
        if received > 1 or predicted > 1:
            result.duplicated[tx] = f"{received} {RECEIVED}, {predicted} {PREDICTION}"
        if not outcome.ok:
            result.logged_unanswered += predicted > 0
            continue
        if not received or not predicted:
            missing = [kind for kind, n in ((RECEIVED, received), (PREDICTION, predicted)) if not n]
            result.lost[tx] = f"acknowledged {outcome.decision}, no {' or '.join(missing)} in the log"
        elif (recorded := ledger.recorded_decision(tx)) != outcome.decision:
            result.lost[tx] = f"acknowledged {outcome.decision}, the log records {recorded}"
    return result


def first_ok_after(
    outcomes: Iterable[Outcome], kill_at: float, scoring_path: str | None = None, *, sustained: bool = True
) -> Outcome | None:
    """The earliest-answered OK outcome among requests due after ``kill_at`` (optionally on one scoring path).

    With ``sustained``, only requests due after the last one that never got an OK answer count.
    """
    chosen = [o for o in outcomes if o.scheduled >= kill_at]
    if sustained:
        last_failed = max((o.scheduled for o in chosen if not o.ok), default=None)
        chosen = [o for o in chosen if last_failed is None or o.scheduled > last_failed]
    answered = [o for o in chosen if o.ok and (scoring_path is None or o.scoring_path == scoring_path)]
    return min(answered, key=lambda o: o.answered or 0.0, default=None)


def recovery_s(
    outcomes: Iterable[Outcome], kill_at: float, scoring_path: str | None = None, *, sustained: bool = True
) -> float | None:
    """Seconds from the kill until decisions succeed again (on ``scoring_path``, if given); None if never."""
    first = first_ok_after(outcomes, kill_at, scoring_path, sustained=sustained)
    return None if first is None or first.answered is None else first.answered - kill_at


def errors_until_s(outcomes: Iterable[Outcome], kill_at: float) -> float | None:
    """Seconds from the kill until the last failed attempt; None if no attempt failed after the kill."""
    times = [t for o in outcomes for t, _ in o.failures if t >= kill_at]
    return max(times) - kill_at if times else None


def phase_of(outcome: Outcome, kill_at: float, during_s: float) -> str:
    """``before`` the kill, ``during`` the first ``during_s`` after it, ``after`` that (by due time)."""
    if outcome.scheduled < kill_at:
        return "before"
    return "during" if outcome.scheduled < kill_at + during_s else "after"


def phase_stats(outcomes: Iterable[Outcome]) -> dict[str, Any]:
    """Sent, answered, p99 latency and how the answers were made, for one phase's outcomes."""
    chosen = list(outcomes)
    answered = [o for o in chosen if o.ok]
    latencies = [o.latency_ms for o in answered if o.latency_ms is not None]
    return {
        "sent": len(chosen),
        "ok": len(answered),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "degraded": sum(o.degraded for o in answered),
        "safe_mode": sum(o.scoring_path == "SAFE_MODE_RULES" for o in answered),
        "local_onnx": sum(o.scoring_path == "LOCAL_ONNX" for o in answered),
        "replayed": sum(o.replayed for o in answered),
        "final_errors": dict(Counter(o.final for o in chosen if not o.ok)),
    }


def failed_attempts(outcomes: Iterable[Outcome], since: float, until: float) -> dict[str, int]:
    """Failed attempts by status code that ended in [since, until): the errors a client saw in a window."""
    return dict(Counter(code for o in outcomes for t, code in o.failures if since <= t < until))


def requests_with_errors(outcomes: Iterable[Outcome], since: float, until: float) -> dict[str, int]:
    """Requests that saw a status code (at least once) on an attempt ending in [since, until), by code."""
    return dict(Counter(code for o in outcomes for code in {c for t, c in o.failures if since <= t < until}))


def summarize(outcomes: Sequence[Outcome], ledger: Ledger, kill_at: float, during_s: float) -> dict[str, Any]:
    """Everything the report says about one fault except its targets."""
    accounting = account(outcomes, ledger)
    phases = {p: phase_stats(o for o in outcomes if phase_of(o, kill_at, during_s) == p) for p in PHASES}
    first = first_ok_after(outcomes, kill_at)
    return {
        "sent": len(outcomes),
        "acknowledged": sum(o.ok for o in outcomes),
        "not_answered": dict(Counter(o.final for o in outcomes if o.final != OK)),
        "lost": len(accounting.lost),
        "lost_examples": dict(list(accounting.lost.items())[:5]),
        "duplicated": len(accounting.duplicated),
        "duplicated_examples": dict(list(accounting.duplicated.items())[:5]),
        "logged_unanswered": accounting.logged_unanswered,
        "errors_in_fault_window": requests_with_errors(outcomes, kill_at, kill_at + during_s),
        "failed_attempts_in_fault_window": failed_attempts(outcomes, kill_at, kill_at + during_s),
        "recovery_s": _round(recovery_s(outcomes, kill_at)),
        "first_ok_s": _round(recovery_s(outcomes, kill_at, sustained=False)),
        "recovery_path": first.scoring_path if first else None,
        "recovery_degraded": first.degraded if first else None,
        "triton_recovery_s": _round(recovery_s(outcomes, kill_at, "TRITON")),
        "errors_until_s": _round(errors_until_s(outcomes, kill_at)),
        "unflagged_fallbacks_after_kill": sum(
            o.ok and o.scheduled >= kill_at and o.scoring_path != "TRITON" and not o.degraded for o in outcomes
        ),
        "phases": phases,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
