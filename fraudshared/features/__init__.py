"""The one card-fraud feature definition, shared by training (batch) and the features service (online).

`definition` names the features and their windows, `state` holds per-card and per-terminal histories,
`engine` is the feature function (online and batch) and `recorded` turns the FEATURES stream's events back
into what the engine folds.
"""

from fraudshared.features.definition import (
    FEATURE_NAMES,
    FEATURE_SET_VERSION,
    HANDBOOK_FEATURES,
    LABEL_DELAY_DAYS,
    N_FEATURES,
    UNKNOWN_DISTANCE,
    US_PER_DAY,
    US_PER_SECOND,
    Label,
    Transaction,
    calendar_flags,
    distance_km,
    to_epoch_us,
)
from fraudshared.features.engine import FeatureEngine, batch_features, known_labels
from fraudshared.features.state import CardState, TerminalState

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SET_VERSION",
    "HANDBOOK_FEATURES",
    "LABEL_DELAY_DAYS",
    "N_FEATURES",
    "UNKNOWN_DISTANCE",
    "US_PER_DAY",
    "US_PER_SECOND",
    "CardState",
    "FeatureEngine",
    "Label",
    "TerminalState",
    "Transaction",
    "batch_features",
    "calendar_flags",
    "distance_km",
    "known_labels",
    "to_epoch_us",
]
