"""Which roles may claim which label source kind (the kind sets precedence): pure rule, every kind."""

from __future__ import annotations

import pytest

from fraud.events.v1 import transaction_events_pb2 as events
from services.ingest.domain.label_sources import REPORTERS, LabelSourceNotAllowed, check_label_source

LABELER, ANALYST, BOTH = frozenset({"labeler"}), frozenset({"analyst"}), frozenset({"labeler", "analyst"})


@pytest.mark.parametrize(
    "kind, roles",
    [
        (events.LABEL_SOURCE_ANALYST, ANALYST),
        (events.LABEL_SOURCE_CHARGEBACK, LABELER),
        (events.LABEL_SOURCE_CUSTOMER_CONFIRMED, LABELER),
        (events.LABEL_SOURCE_UNSPECIFIED, LABELER),
        (events.LABEL_SOURCE_UNSPECIFIED, ANALYST),
        (events.LABEL_SOURCE_CHARGEBACK, BOTH),
    ],
)
def test_a_role_reports_the_kinds_it_produces(kind: int, roles: frozenset[str]) -> None:
    check_label_source(kind, roles, "user:x")


@pytest.mark.parametrize(
    "kind, roles, message",
    [
        (
            events.LABEL_SOURCE_CHARGEBACK,
            ANALYST,
            "user:x may not report a LABEL_SOURCE_CHARGEBACK label: that kind comes from the labeler role",
        ),
        (events.LABEL_SOURCE_CUSTOMER_CONFIRMED, ANALYST, "CUSTOMER_CONFIRMED label: that kind comes from the labeler"),
        (events.LABEL_SOURCE_ANALYST, LABELER, "LABEL_SOURCE_ANALYST label: that kind comes from the analyst role"),
        (events.LABEL_SOURCE_ANALYST, frozenset(), "comes from the analyst role"),
        (99, BOTH, "may not report a 99 label: that kind comes from no role"),
    ],
)
def test_a_claimed_kind_the_role_does_not_produce_is_refused(kind: int, roles: frozenset[str], message: str) -> None:
    with pytest.raises(LabelSourceNotAllowed, match=message):
        check_label_source(kind, roles, "user:x")


def test_every_source_kind_has_its_reporters() -> None:
    assert set(REPORTERS) == set(events.LabelSource.values())
