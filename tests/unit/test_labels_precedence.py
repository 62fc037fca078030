"""Label precedence (fraudshared.features.labels): orders of arrival, corrections, retries, old payloads."""

from __future__ import annotations

import itertools

import pytest

from fraud.events.v1 import transaction_events_pb2 as events
from fraudshared.features.labels import (
    UNKNOWN_PRINCIPAL,
    LabelFact,
    Outcome,
    classify,
    decide,
    fact_of,
    in_force,
    upcast,
)

ANALYST, CUSTOMER, CHARGEBACK, OTHER = (
    events.LABEL_SOURCE_ANALYST,
    events.LABEL_SOURCE_CUSTOMER_CONFIRMED,
    events.LABEL_SOURCE_CHARGEBACK,
    events.LABEL_SOURCE_UNSPECIFIED,
)


def fact(is_fraud: bool, source: int, principal: str = "user:alice") -> LabelFact:
    return LabelFact(is_fraud, source, principal)


def test_a_first_label_is_in_force() -> None:
    assert decide(None, fact(True, ANALYST)) is Outcome.FIRST
    assert in_force([fact(True, ANALYST)]) == fact(True, ANALYST)


def test_a_chargeback_corrects_an_analyst_whichever_arrives_first() -> None:
    analyst, chargeback = fact(False, ANALYST, "user:ann"), fact(True, CHARGEBACK, "service:ingest")
    assert classify([analyst], chargeback) is Outcome.CORRECTION
    assert classify([chargeback], analyst) is Outcome.OUTRANKED
    assert in_force([analyst, chargeback]) == in_force([chargeback, analyst]) == chargeback


def test_within_one_source_the_latest_wins() -> None:
    first, second = fact(True, ANALYST, "user:ann"), fact(False, ANALYST, "user:bob")
    assert classify([first], second) is Outcome.CORRECTION
    assert in_force([first, second]) == second
    assert in_force([second, first]) == first


def test_the_same_verdict_from_a_higher_source_is_a_confirmation() -> None:
    assert classify([fact(True, ANALYST)], fact(True, CHARGEBACK, "user:cb")) is Outcome.CONFIRMATION


def test_an_identical_retry_is_a_duplicate_and_a_change_of_mind_is_not() -> None:
    mine = fact(True, ANALYST, "user:ann")
    assert classify([mine], mine) is Outcome.DUPLICATE
    changed = fact(False, ANALYST, "user:ann")
    assert classify([mine], changed) is Outcome.CORRECTION
    assert classify([mine, changed], mine) is Outcome.CORRECTION  # back again: her latest said genuine
    # Another principal's identical verdict, or the same principal under another source, is recorded.
    assert classify([mine], fact(True, ANALYST, "user:bob")) is Outcome.CONFIRMATION
    assert classify([mine], fact(True, CUSTOMER, "user:ann")) is Outcome.CONFIRMATION
    # A retry of a label that was outranked meanwhile is still a retry.
    assert classify([mine, fact(False, CHARGEBACK, "user:cb")], mine) is Outcome.DUPLICATE


@pytest.mark.parametrize(
    "labels",
    [
        [fact(True, ANALYST, "a"), fact(False, CHARGEBACK, "b"), fact(True, CUSTOMER, "c")],
        [fact(True, OTHER, "a"), fact(False, ANALYST, "b"), fact(True, ANALYST, "c"), fact(False, OTHER, "d")],
        [fact(False, CUSTOMER, "a"), fact(True, CHARGEBACK, "b"), fact(False, CHARGEBACK, "c")],
    ],
)
def test_every_order_of_arrival_ends_with_the_latest_of_the_highest_source(labels: list[LabelFact]) -> None:
    top = max(f.rank for f in labels)
    for order in itertools.permutations(labels):
        expected = [f for f in order if f.rank == top][-1]
        assert in_force(order) == expected, order


def test_the_fold_is_a_pure_function_of_the_recorded_order() -> None:
    labels = [fact(True, ANALYST, "a"), fact(False, CUSTOMER, "b"), fact(True, ANALYST, "c")]
    assert in_force(labels) == in_force(list(labels)) == fact(False, CUSTOMER, "b")


def test_a_stored_version_1_label_is_read_with_source_unspecified_and_principal_unknown() -> None:
    stored = events.LabelReported(
        schema_version=1, transaction_id="tx-old", is_fraud=True, source="chargeback", subject_id="s1"
    ).SerializeToString()  # a payload as version 1 wrote it: no label_source, no principal
    old = upcast(events.LabelReported.FromString(stored))
    assert (old.label_source, old.principal, old.source) == (OTHER, UNKNOWN_PRINCIPAL, "chargeback")
    assert fact_of(events.LabelReported.FromString(stored)) == LabelFact(True, OTHER, UNKNOWN_PRINCIPAL)
    # Any later label with a known source corrects (or confirms) it; an unspecified one too (latest wins).
    assert classify([fact_of(old)], fact(False, ANALYST)) is Outcome.CORRECTION
    assert fact_of(events.LabelApplied(is_fraud=True)) == LabelFact(True, OTHER, UNKNOWN_PRINCIPAL)


def test_a_current_label_reads_as_recorded() -> None:
    label = events.LabelReported(
        schema_version=2, is_fraud=False, label_source=CHARGEBACK, principal="user:dev-labeler"
    )
    assert upcast(label) is label
    assert fact_of(label) == LabelFact(False, CHARGEBACK, "user:dev-labeler")
