"""docs/resilience.md rendered from a run's JSON: every fault gets its row, its table and what it missed."""

from __future__ import annotations

from resilience.check import PREDICTION, RECEIVED, Ledger, LogRecord, summarize
from resilience.client import GAVE_UP, OK, Outcome
from resilience.report import render, targets

SETTINGS = {
    "rate": 120.0,
    "before_s": 10.0,
    "after_s": 25.0,
    "during_s": 10.0,
    "give_up_s": 30.0,
    "attempt_timeout_s": 2.0,
    "first_backoff_s": 0.05,
    "max_backoff_s": 1.0,
    "components": ["ingest", "triton"],
}


def fault(component: str, outcomes: list[Outcome], records: list[LogRecord], manual: bool) -> dict:
    summary = summarize(outcomes, Ledger.of(records), kill_at=10.0, during_s=10.0)
    facts = {
        "component": component,
        "pids_killed": [42],
        "kill_at_s": 10.0,
        "unhealthy_after": {"ingest": "DOWN"} if manual else {},
        "champion_back_s": None if manual else 0.2,
        "manual_restart": manual,
        "notes": [],
    }
    return {"facts": facts, "summary": summary, "targets": targets(component, summary, facts)}


def test_render_lists_each_fault_its_misses_and_the_audit() -> None:
    answered = Outcome("a", 5.0, final=OK, answered=5.02, decision="APPROVE", scoring_path="TRITON")
    dead = Outcome("b", 11.0, final=GAVE_UP, failures=[(11.1, "UNAVAILABLE")])
    fallback = Outcome("c", 11.0, final=OK, answered=11.3, decision="APPROVE", scoring_path="LOCAL_ONNX", degraded=True)
    logged = [LogRecord(RECEIVED, "a", 1), LogRecord(PREDICTION, "a", 1, "APPROVE")]
    logged_c = [LogRecord(RECEIVED, "c", 2), LogRecord(PREDICTION, "c", 2, "APPROVE")]
    report = {
        "timestamp": "2026-12-06T00:00:00+00:00",
        "commit": "abc1234",
        "machine": "vm, 2 CPUs",
        "command": "make resilience",
        "settings": SETTINGS,
        "faults": [
            fault("ingest", [answered, dead], logged, manual=True),
            fault("triton", [answered, fallback], logged + logged_c, manual=False),
        ],
        "audit": {"verify": {"rc": 0, "summary": "sealed"}, "replay": {"rc": 1, "summary": "1 mismatch"}},
        "log_problems": ["PREDICTIONS: read stopped: EnvelopeError: bad"],
    }
    text = render(report)
    rows = [line for line in text.splitlines() if line.startswith(("| ingest |", "| triton |"))]
    assert rows[0].startswith("| ingest | 2 | 1 | 0 | 0 | UNAVAILABLE 1 | never |")
    assert rows[0].endswith("| yes | decisions again <= 5 s, no manual restart |")
    assert rows[1].startswith("| triton | 2 | 2 | 0 | 0 | 0 | 1.30 |") and rows[1].endswith("| no | none |")
    assert "### ingest" in text and "### triton" in text
    assert "- **needed a manual restart** (`fraudctl down` + `fraudctl up`)" in text
    assert '- not serving after the window: {"ingest": "DOWN"}' in text
    assert "| local ONNX answers | 0 | 1 | 0 |" in text
    assert "- after the load: probes decided through Triton, not degraded, 0.20 s later" in text
    assert "- `fraudctl audit replay`: exit 1: 1 mismatch" in text
    assert "- log read: PREDICTIONS: read stopped: EnvelopeError: bad" in text
    assert "`make resilience`" in text and "abc1234" in text
