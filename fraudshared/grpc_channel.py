"""Client-channel options every service uses towards a peer (another service, Triton).

gRPC's default reconnect backoff starts at 1 s and grows by 1.6x up to 120 s, so after a peer was restarted
(the supervisor brings it back on the same address within about 1-2 s) the next attempt could come many
seconds later and miss the "decisions again within 5 s" target of docs/resilience.md. A peer on loopback or
in the same cluster is cheap to retry: start at 100 ms and never wait more than 1 s between attempts.
"""

from __future__ import annotations

RECONNECT_OPTIONS: list[tuple[str, int]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
