"""Says when the Triton circuit breaker opens and closes, and why: a log line and a gauge.

Without it a run of local-rung decisions (flagged degraded) shows in the metrics but not its cause: the
resilience run saw 906 of 1,200 answers on the local rung after a nats-server kill and could not tell why.
"""

from __future__ import annotations

from aiobreaker import CircuitBreaker, CircuitBreakerListener
from prometheus_client import Gauge

from fraudshared.telemetry import get_logger

BREAKER_OPEN = Gauge("fraud_scoring_breaker_open", "1 while the circuit breaker is open or half-open", ["breaker"])
log = get_logger(__name__)


def _name(state: object) -> str:
    kind = getattr(state, "state", state)  # aiobreaker passes state objects whose `state` is the enum member
    return str(getattr(kind, "name", kind)).lower()


class BreakerLog(CircuitBreakerListener):
    """Logs each state change of a breaker with the last failure that led to it."""

    def __init__(self) -> None:
        self.last_failure = ""

    def failure(self, breaker: CircuitBreaker, exception: Exception) -> None:
        self.last_failure = f"{type(exception).__name__}: {exception}"[:300]

    def state_change(self, breaker: CircuitBreaker, old: object, new: object) -> None:
        before, after = _name(old), _name(new)
        BREAKER_OPEN.labels(breaker.name or "breaker").set(0 if after == "closed" else 1)
        if before == after:  # aiobreaker re-enters "open" for each call that was in flight when it opened
            return
        if after == "open":
            log.warning("%s breaker %s -> open (last failure: %s)", breaker.name, before, self.last_failure)
        else:
            log.info("%s breaker %s -> %s", breaker.name, before, after)
