"""Card token -> subject on an event loop: cache hits inline, misses batched into one key-store write.

A card's first transaction needs a durable key-store write (an fsync in SQLite, an HTTP call to Vault).
Under load many first sights arrive at once; instead of one thread hop and one write each, the misses that
arrive while a write is in progress wait for the next one, which creates them all together (a group commit).
"""

from __future__ import annotations

import asyncio

from fraudshared.privacy.keys import SubjectKey, SubjectKeyStore


class SubjectResolver:
    """Resolve card tokens to subjects for one event loop."""

    def __init__(self, store: SubjectKeyStore) -> None:
        self.store = store
        self._waiting: dict[str, asyncio.Future[SubjectKey]] = {}
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0  # key-store calls made (for tests and metrics)

    async def resolve(self, card_token: str) -> SubjectKey:
        """The card's subject, created (durably) on first sight."""
        cached = self.store.peek(card_token)
        if cached is not None:
            return cached
        waiter = self._waiting.get(card_token)
        if waiter is None:
            waiter = self._waiting[card_token] = asyncio.get_running_loop().create_future()
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write())
        return await asyncio.shield(waiter)  # a cancelled caller does not cancel the others' write

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, {}
            self.writes += 1
            try:
                found = await asyncio.to_thread(self.store.get_or_create_many, list(batch))
            except Exception as exc:  # every waiter of this batch gets the store's error
                for waiter in batch.values():
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for token, waiter in batch.items():
                if not waiter.done():
                    waiter.set_result(found[token])
