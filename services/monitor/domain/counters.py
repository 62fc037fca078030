"""What the monitor folds from the streams (drift and realized performance arrive in a later issue)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as events


@dataclass
class PredictionCounters:
    """Decision mix, degraded share and label count; a pure fold of PredictionMade / LabelReported."""

    predictions: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    labels: int = 0
    last_prediction_seq: int = 0
    latest_event_time_us: int = 0

    def on_prediction(self, seq: int, prediction: events.PredictionMade) -> None:
        self.predictions += 1
        self.decisions[common.Decision.Name(prediction.decision).removeprefix("DECISION_")] += 1
        self.degraded += int(prediction.degraded)
        self.last_prediction_seq = max(self.last_prediction_seq, seq)
        self.latest_event_time_us = max(self.latest_event_time_us, prediction.event_time.ToMicroseconds())

    def on_label(self, label: events.LabelReported) -> None:
        self.labels += 1
