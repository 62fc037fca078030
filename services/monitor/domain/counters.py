"""What the monitor folds from the streams (drift and realized performance arrive in a later issue)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fraud.common.v1 import decision_pb2 as common
from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared.features import labels as precedence


@dataclass
class PredictionCounters:
    """Decision mix, degraded share and labels; a pure fold of PredictionMade / LabelReported in stream order.

    `labels` counts every recorded label; `in_force` is each labelled transaction's label by precedence
    (`fraudshared.features.labels`, the one the features service applies), what realized performance reads.
    """

    predictions: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    degraded: int = 0
    labels: int = 0
    in_force: dict[str, precedence.LabelFact] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)  # first / correction / confirmation / outranked
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
        current, outcome = precedence.apply(self.in_force.get(label.transaction_id), precedence.fact_of(label))
        if current is not None:
            self.in_force[label.transaction_id] = current
        self.outcomes[outcome.value] += 1

    def frauds_in_force(self) -> int:
        """Labelled transactions whose label in force says fraud."""
        return sum(1 for fact in self.in_force.values() if fact.is_fraud)
