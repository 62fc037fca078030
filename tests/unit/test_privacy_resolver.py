"""SubjectResolver: cache hits inline, first sights batched into one key-store write (a group commit)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from fraudshared.privacy import PrivacyError, SqliteSubjectKeyStore, SubjectKey
from fraudshared.privacy.resolver import SubjectResolver


async def test_concurrent_first_sights_share_writes_and_agree_with_the_store(tmp_path: Path) -> None:
    store = SqliteSubjectKeyStore(tmp_path / "keys.db")
    resolver = SubjectResolver(store)
    tokens = [f"ct_{i:032x}" for i in range(200)]
    subjects = await asyncio.gather(*(resolver.resolve(t) for t in tokens + tokens[:50]))
    assert resolver.writes <= 3  # 200 new cards: the first write, then everything that queued behind it
    by_token = dict(zip(tokens + tokens[:50], subjects, strict=True))
    assert len({s.subject_id for s in subjects}) == 200
    fresh = SqliteSubjectKeyStore(tmp_path / "keys.db")  # another process's view: the same, durable subjects
    assert all(fresh.find(t) == by_token[t] for t in tokens)
    writes = resolver.writes
    assert await resolver.resolve(tokens[7]) == by_token[tokens[7]] and resolver.writes == writes  # cache hit


async def test_a_failing_store_fails_its_waiters_and_the_next_batch_retries(tmp_path: Path) -> None:
    class Flaky(SqliteSubjectKeyStore):
        fail = True

        def get_or_create_many(self, card_tokens: Sequence[str]) -> dict[str, SubjectKey]:
            if self.fail:
                raise PrivacyError("key store unavailable")
            return super().get_or_create_many(card_tokens)

    store = Flaky(tmp_path / "keys.db")
    resolver = SubjectResolver(store)
    with pytest.raises(PrivacyError, match="unavailable"):
        await resolver.resolve("ct_a")
    store.fail = False
    assert (await resolver.resolve("ct_a")).subject_id == store.find("ct_a").subject_id  # type: ignore[union-attr]
