"""Deterministic canary split: a hash of the card key (subject id), never a random draw (replay needs it)."""

from __future__ import annotations

import hashlib

from services.scoring.domain.catalog import ModelCatalog, ServingModel


def canary_bucket(card_key: str) -> int:
    """0-99, stable for a card key on every process and platform."""
    return int.from_bytes(hashlib.sha256(card_key.encode()).digest()[:8], "big") % 100


def deciding_model(catalog: ModelCatalog, bucket: int) -> tuple[ServingModel | None, bool]:
    """The model that decides for this bucket, and whether it is the canary."""
    canary = catalog.canary
    if canary is not None and bucket < canary.canary_percent:
        return canary, True
    return catalog.champion, False
