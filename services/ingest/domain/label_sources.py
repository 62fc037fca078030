"""Who may claim which kind of label: the source kind decides precedence, so it must match the reporter's role.

A chargeback outranks an analyst's verdict (fraudshared.features.labels), so a caller able to call a label a
chargeback could overrule the investigators. The kinds are tied to the roles that produce them: analysts
(people at the case-management tool) report ANALYST labels; labelers (the chargeback and customer-confirmation
feeds, systems) report CHARGEBACK and CUSTOMER_CONFIRMED; either may report an UNSPECIFIED one, which ranks
lowest. A principal holding both roles may report any kind. Pure: roles in, verdict out.
"""

from __future__ import annotations

from collections.abc import Set

from fraud.events.v1 import transaction_events_pb2 as events

REPORTERS: dict[int, frozenset[str]] = {
    events.LABEL_SOURCE_UNSPECIFIED: frozenset({"labeler", "analyst"}),
    events.LABEL_SOURCE_ANALYST: frozenset({"analyst"}),
    events.LABEL_SOURCE_CUSTOMER_CONFIRMED: frozenset({"labeler"}),
    events.LABEL_SOURCE_CHARGEBACK: frozenset({"labeler"}),
}


class LabelSourceNotAllowed(PermissionError):
    """The caller's roles do not produce labels of the kind it claimed."""


def check_label_source(label_source: int, roles: Set[str], principal_id: str) -> None:
    """Raises `LabelSourceNotAllowed` unless one of ``roles`` may report a label of kind ``label_source``."""
    allowed = REPORTERS.get(label_source)
    if allowed is None or allowed.isdisjoint(roles):
        kind = events.LabelSource.Name(label_source) if allowed is not None else str(label_source)
        needs = f"the {' or '.join(sorted(allowed))} role" if allowed else "no role"
        raise LabelSourceNotAllowed(f"{principal_id} may not report a {kind} label: that kind comes from {needs}")
