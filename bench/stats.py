"""Latency percentiles and throughput from one run."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class RunStats:
    name: str
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    offered_rate: float | None = None
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    throughput: float = 0.0

    @classmethod
    def build(
        cls, name: str, latencies_ms: list[float], seconds: float, errors: Counter[str], decisions: Counter[str],
        offered_rate: float | None = None,
    ) -> RunStats:  # fmt: skip
        lat = np.asarray(latencies_ms) if latencies_ms else np.zeros(1)
        p50, p95, p99, p999 = (float(np.percentile(lat, q)) for q in (50, 95, 99, 99.9))
        return cls(
            name=name, sent=len(latencies_ms) + sum(errors.values()), ok=len(latencies_ms), errors=dict(errors),
            decisions=dict(decisions), seconds=seconds, offered_rate=offered_rate, p50_ms=p50, p95_ms=p95,
            p99_ms=p99, p999_ms=p999, throughput=len(latencies_ms) / seconds if seconds else 0.0,
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
