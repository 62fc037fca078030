"""Lost and duplicated accounting, recovery times and phases, from hand-made outcomes and log records."""

from __future__ import annotations

import pytest

from resilience.check import (
    PREDICTION,
    RECEIVED,
    Ledger,
    LogRecord,
    account,
    errors_until_s,
    failed_attempts,
    phase_of,
    recovery_s,
    requests_with_errors,
    summarize,
)
from resilience.client import GAVE_UP, OK, Outcome

KILL = 10.0


def ok(tx: str, scheduled: float, answered: float, decision: str = "APPROVE", path: str = "TRITON", **kw) -> Outcome:
    return Outcome(tx, scheduled, final=OK, answered=answered, decision=decision, scoring_path=path, **kw)


def logged(tx: str, decision: str = "APPROVE", seq: int = 1) -> list[LogRecord]:
    return [LogRecord(RECEIVED, tx, seq), LogRecord(PREDICTION, tx, seq, decision)]


def test_an_acknowledged_decision_fully_logged_with_the_same_decision_is_neither_lost_nor_duplicated() -> None:
    result = account([ok("a", 1, 1.01), ok("b", 2, 2.01, "DECLINE")], Ledger.of(logged("a") + logged("b", "DECLINE")))
    assert result.lost == {} and result.duplicated == {} and result.logged_unanswered == 0


def test_acknowledged_without_its_received_or_prediction_is_lost() -> None:
    ledger = Ledger.of([LogRecord(RECEIVED, "a", 1), LogRecord(PREDICTION, "b", 2, "APPROVE")])
    result = account([ok("a", 1, 1.1), ok("b", 1, 1.1), ok("c", 1, 1.1)], ledger)
    assert set(result.lost) == {"a", "b", "c"}
    assert "no PredictionMade" in result.lost["a"] and "no TransactionReceived" in result.lost["b"]
    assert "TransactionReceived or PredictionMade" in result.lost["c"]


def test_a_logged_decision_other_than_the_acknowledged_one_is_lost_and_the_first_prediction_is_the_record() -> None:
    records = [*logged("a", "APPROVE", seq=5), LogRecord(PREDICTION, "a", 9, "DECLINE")]
    result = account([ok("a", 1, 1.1, "DECLINE")], Ledger.of(reversed(records)))
    assert result.lost == {"a": "acknowledged DECLINE, the log records APPROVE"}
    assert result.duplicated == {"a": "1 TransactionReceived, 2 PredictionMade"}


def test_duplicates_count_across_partitions_even_for_requests_never_answered() -> None:
    records = [*logged("a", seq=1), LogRecord(RECEIVED, "a", 7), *logged("b", seq=3)]
    gave_up = Outcome("b", 2.0, final=GAVE_UP, failures=[(3.0, "UNAVAILABLE")])
    result = account([ok("a", 1, 1.1), gave_up, Outcome("c", 2.0, final=GAVE_UP)], Ledger.of(records))
    assert result.duplicated == {"a": "2 TransactionReceived, 1 PredictionMade"}
    assert result.lost == {}  # b and c were never acknowledged: not lost
    assert result.logged_unanswered == 1  # b was decided and logged, the client never heard


def test_recovery_is_the_first_ok_answer_to_a_request_sent_after_the_kill() -> None:
    outcomes = [
        ok("before-slow", 9.0, 14.0),  # answered late but sent before the kill: not a recovery
        ok("late", 11.0, 13.5),
        ok("first", 12.0, 12.7, path="LOCAL_ONNX", degraded=True),
        ok("triton", 13.0, 16.0),
    ]
    assert recovery_s(outcomes, KILL) == pytest.approx(2.7)
    assert recovery_s(outcomes, KILL, "TRITON") == pytest.approx(3.5)
    assert recovery_s(outcomes, KILL, "SAFE_MODE_RULES") is None
    assert recovery_s([ok("x", 1, 2)], KILL) is None


def test_an_answer_just_before_the_platform_went_down_for_good_is_not_a_recovery() -> None:
    outcomes = [
        ok("slipped-through", 10.005, 10.015),
        *(Outcome(f"dead-{i}", 10.1 + i, final=GAVE_UP, failures=[(10.2 + i, "UNAVAILABLE")]) for i in range(5)),
    ]
    assert recovery_s(outcomes, KILL) is None
    assert recovery_s(outcomes, KILL, sustained=False) == pytest.approx(0.015)


def test_recovery_counts_only_requests_sent_after_the_last_one_that_never_got_an_answer() -> None:
    outcomes = [
        ok("slipped-through", 10.005, 10.015),
        Outcome("dead", 10.5, final=GAVE_UP, failures=[(10.6, "UNAVAILABLE")]),
        Outcome("refused", 11.0, final="INTERNAL", failures=[(11.1, "INTERNAL")]),
        ok("retried", 11.5, 14.0, failures=[(11.6, "UNAVAILABLE")]),  # due after the last failure: counts
        ok("fresh", 13.0, 14.5),
    ]
    assert recovery_s(outcomes, KILL) == pytest.approx(4.0)


def test_errors_until_is_the_last_failed_attempt_after_the_kill_and_windows_count_attempts_by_code() -> None:
    outcomes = [
        Outcome("a", 9.0, final=OK, answered=15, failures=[(9.5, "UNAVAILABLE"), (10.5, "UNAVAILABLE")]),
        Outcome("b", 11.0, final=GAVE_UP, failures=[(11.2, "DEADLINE_EXCEEDED"), (21.0, "UNAVAILABLE")]),
    ]
    assert errors_until_s(outcomes, KILL) == pytest.approx(11.0)
    assert errors_until_s([ok("c", 1, 2)], KILL) is None
    assert failed_attempts(outcomes, KILL, KILL + 10) == {"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 1}
    many = [Outcome("c", 10.0, failures=[(10.1, "UNAVAILABLE"), (10.2, "UNAVAILABLE"), (10.4, "UNAVAILABLE")])]
    assert failed_attempts(many, KILL, KILL + 10) == {"UNAVAILABLE": 3}
    assert requests_with_errors(many + outcomes, KILL, KILL + 10) == {"UNAVAILABLE": 2, "DEADLINE_EXCEEDED": 1}


@pytest.mark.parametrize(("scheduled", "phase"), [(9.99, "before"), (10.0, "during"), (19.9, "during"), (20, "after")])
def test_phase_is_read_off_the_due_time(scheduled: float, phase: str) -> None:
    assert phase_of(Outcome("x", scheduled), KILL, during_s=10.0) == phase


def test_summary_counts_per_phase_and_flags_unflagged_fallbacks() -> None:
    outcomes = [
        ok("a", 5.0, 5.01),
        ok("b", 11.0, 11.5, "REVIEW", path="SAFE_MODE_RULES", degraded=True),
        ok("c", 12.0, 12.1, path="LOCAL_ONNX"),  # off Triton, not flagged
        Outcome("d", 12.5, final=GAVE_UP, failures=[(13.0, "UNAVAILABLE")]),
        ok("e", 25.0, 25.02),
    ]
    records = [
        r for tx, d in (("a", "APPROVE"), ("b", "REVIEW"), ("c", "APPROVE"), ("e", "APPROVE")) for r in logged(tx, d)
    ]
    summary = summarize(outcomes, Ledger.of(records), KILL, during_s=10.0)
    assert (summary["sent"], summary["acknowledged"], summary["lost"], summary["duplicated"]) == (5, 4, 0, 0)
    assert summary["not_answered"] == {GAVE_UP: 1}
    # d (due 12.5) never got an answer: decisions succeed again with e, due after it.
    assert summary["recovery_s"] == pytest.approx(15.02) and summary["recovery_path"] == "TRITON"
    assert summary["first_ok_s"] == pytest.approx(1.5)
    assert summary["triton_recovery_s"] == pytest.approx(15.02)
    assert summary["unflagged_fallbacks_after_kill"] == 1
    during = summary["phases"]["during"]
    assert (during["sent"], during["ok"], during["safe_mode"], during["local_onnx"], during["degraded"]) == (
        3,
        2,
        1,
        1,
        1,
    )
    assert during["final_errors"] == {GAVE_UP: 1}
    assert summary["phases"]["before"]["p99_ms"] == pytest.approx(10.0)
    assert summary["errors_in_fault_window"] == {"UNAVAILABLE": 1}
    assert summary["failed_attempts_in_fault_window"] == {"UNAVAILABLE": 1}
