"""Per-caller rate limits: a token bucket per (principal, method), answered RESOURCE_EXHAUSTED with RetryInfo.

A caller over its rate gets RESOURCE_EXHAUSTED at once, with a ``google.rpc.RetryInfo`` detail (in the
standard ``grpc-status-details-bin`` trailer) saying when one more call would be admitted: one noisy caller
cannot take the capacity every other caller shares. The limit runs after authentication (it keys on
`fraudshared.identity.current_principal`), so an unauthenticated flood is refused before it costs a bucket.

Why a hand-written bucket: the check runs on every hot-path call, inside the event loop, and needs two floats
per key; libraries such as ``limits`` add storage backends and moving windows we do not need, at several
times the cost per check. Buckets of callers idle for `IDLE_EVICT_S` are dropped, so a stream of distinct
principals cannot grow memory without bound.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from fraudshared.identity import NoPrincipal, current_principal
from fraudshared.unary_interceptor import UnaryWrappingInterceptor

STATUS_DETAILS_KEY = "grpc-status-details-bin"
IDLE_EVICT_S = 300.0
_EVICT_EVERY = 4096  # admissions between sweeps of idle buckets


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Sustained calls per second and the burst a caller may spend at once."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise ValueError(f"rate must be a positive number of calls per second, got {self.per_second!r}")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError(f"burst must be at least 1 call, got {self.burst!r}")


class TokenBuckets:
    """One token bucket per key; `take` answers 0.0 when admitted, else the seconds until a token is there."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, last refill time]
        self._admitted = 0

    def take(self, key: str) -> float:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [self._limit.burst, now]
        else:
            bucket[0] = min(self._limit.burst, bucket[0] + (now - bucket[1]) * self._limit.per_second)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            self._admitted += 1
            if self._admitted % _EVICT_EVERY == 0:
                self._evict(now)
            return 0.0
        return (1.0 - bucket[0]) / self._limit.per_second

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        idle = [key for key, (_, last) in self._buckets.items() if now - last > IDLE_EVICT_S]
        for key in idle:
            del self._buckets[key]


def retry_status(message: str, retry_after_s: float) -> status_pb2.Status:
    """A google.rpc.Status RESOURCE_EXHAUSTED carrying RetryInfo (what grpc-status-details-bin holds)."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(1_000_000, int(retry_after_s * 1e9)))  # at least 1 ms: "now" would be a busy loop
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])


def retry_after_of(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay in seconds a RESOURCE_EXHAUSTED error carries, or None (for clients and tests)."""
    for key, value in error.trailing_metadata() or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return info.retry_delay.ToNanoseconds() / 1e9
    return None


class RateLimitInterceptor(UnaryWrappingInterceptor):
    """Admits each listed method's calls through its principal's bucket; other methods pass untouched."""

    def __init__(self, limits: Mapping[str, RateLimit], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._buckets = {method: TokenBuckets(limit, clock) for method, limit in limits.items()}

    def wrap(self, handler: grpc.RpcMethodHandler, full_method: str) -> grpc.RpcMethodHandler:
        buckets = self._buckets.get(full_method)
        if buckets is None:
            return handler
        behavior = handler.unary_unary
        method = full_method.rsplit("/", 1)[-1]

        async def limited(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                caller = current_principal().id
            except NoPrincipal:  # no authentication in front (a unit-test server): nothing to key on
                caller = "anonymous"
            wait_s = buckets.take(caller)
            if wait_s:
                message = f"{caller} is over its rate limit for {method}; retry in {wait_s:.3f} s"
                status = retry_status(message, wait_s)
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    message,
                    trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
                )
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return grpc.unary_unary_rpc_method_handler(
            limited,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


# The methods each service limits per caller (FRAUD_<SERVICE>_RATE_PER_CALLER calls/s, _RATE_BURST calls).
PER_CALLER_METHODS: dict[str, tuple[str, ...]] = {
    "ingest": ("/fraud.ingest.v1.IngestService/ScoreTransaction",),
}
# A payment switch is one principal sending everything: the default sits above what one host serves here
# (capacity at SLO ~1,000 tx/s), so it bounds a runaway or hostile caller without shaping normal traffic.
DEFAULT_PER_CALLER = 2000.0


def limits_from_env(service: str, env_name: str) -> dict[str, RateLimit]:
    """The per-caller limits of ``service`` (``env_name``: its FRAUD_<NAME> part); {} when it limits nothing.

    FRAUD_<NAME>_RATE_PER_CALLER: calls per second per principal (default `DEFAULT_PER_CALLER`, 0 = off);
    FRAUD_<NAME>_RATE_BURST: calls a principal may send at once (default: one second's worth).

    Raises:
        fraudshared.config.ConfigError: If a value is not a number in range.
    """
    from fraudshared.config import env_float

    methods = PER_CALLER_METHODS.get(service, ())
    if not methods:
        return {}
    rate = env_float(f"FRAUD_{env_name}_RATE_PER_CALLER", DEFAULT_PER_CALLER, minimum=0.0)
    if rate == 0:
        return {}
    burst = env_float(f"FRAUD_{env_name}_RATE_BURST", max(rate, 1.0), minimum=1.0)
    return {method: RateLimit(rate, burst) for method in methods}
