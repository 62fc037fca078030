"""The notary: follows every event stream but AUDIT in order and seals signed, chained checkpoints (docs/audit.md).

``domain`` holds the per-stream sealing state (pure), ``adapters`` the JetStream log and the signing key from
the secrets port, ``service`` the follow-and-seal loop that the governance service runs in the background.
"""
