"""Audit trail: RFC 6962 Merkle trees, signed and chained checkpoints, verification, replay (docs/audit.md).

Pure: `merkle`, `leaves`, `keys`, `checkpoint`, `verify`, `decision_rules`. Over a JetStream connection:
`jetstream` (reading the log), and the auditor's use cases `check` (verify, prove), `replay`, `explain`.
The notary (services/governance/notary) and ``fraudctl audit`` share all of it.
"""
