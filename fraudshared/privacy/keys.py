"""Subject key store port, and its embedded SQLite adapter (the development default; Vault: `vault_keys`).

A subject is one card. On first use it gets a random ``subject_id`` (what events carry in clear) and a random
256-bit data key (what seals its personal fields). `forget` destroys both the key and the card token ->
subject mapping: the subject's ciphertexts become unreadable and its ``subject_id`` links to nobody.
Messages and logs never contain a card token or a key.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

KEY_BYTES = 32
SUBJECT_KEYS_FILENAME = "subject-keys.db"


class PrivacyError(Exception):
    """A subject key could not be read, stored or used (the message never holds a card token or key)."""


@dataclass(frozen=True)
class SubjectKey:
    """The subject's random id and its AES-256 data key (the key is left out of ``repr``)."""

    subject_id: str
    key: bytes = field(repr=False)


class SubjectKeyStore(Protocol):
    """Per-card subject ids and data keys, destroyable on request."""

    def get_or_create(self, card_token: str) -> SubjectKey:
        """Returns the card's subject, creating it (new id, new key) on first use."""
        ...

    def peek(self, card_token: str) -> SubjectKey | None:
        """The card's subject if this process has it cached (no I/O: safe on an event loop)."""
        ...

    def get_or_create_many(self, card_tokens: Sequence[str]) -> dict[str, SubjectKey]:
        """`get_or_create` for several cards at once (one durable write for all the new ones)."""
        ...

    def find(self, card_token: str) -> SubjectKey | None:
        """Returns the card's subject, or None when it has none (never used, or forgotten)."""
        ...

    def by_subject_id(self, subject_id: str) -> SubjectKey | None:
        """Returns the subject with this id, or None when unknown or forgotten."""
        ...

    def forget(self, card_token: str) -> str | None:
        """Destroys the card's key and mapping; returns the destroyed subject_id, or None if it had none."""
        ...

    def is_forgotten(self, subject_id: str) -> bool:
        """True when the subject with this id was destroyed by `forget`."""
        ...

    def drop_cached(self, subject_id: str) -> None:
        """Forget this process's cached copy of a subject (another process destroyed it: SubjectErased)."""
        ...


class KeyCache:
    """Bounded LRU of subjects by card token and by subject id; entries older than ``ttl_s`` are dropped.

    The TTL bounds how long another process's `forget` goes unnoticed here. A put is ignored when a forget
    ran since the caller's lookup began (``epoch``), so a concurrent lookup cannot re-cache a destroyed key.
    """

    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float]) -> None:
        self._max, self._ttl_s, self._clock = max_entries, ttl_s, clock
        self._entries: OrderedDict[str, tuple[float, SubjectKey]] = OrderedDict()
        self._lock = threading.Lock()
        self.epoch = 0

    def get(self, name: str) -> SubjectKey | None:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return None
            if self._clock() - entry[0] >= self._ttl_s:
                del self._entries[name]
                return None
            self._entries.move_to_end(name)
            return entry[1]

    def put(self, epoch: int, subject: SubjectKey, card_token: str | None = None) -> None:
        with self._lock:
            if epoch != self.epoch or self._max <= 0:
                return
            now = self._clock()
            for name in (f"s:{subject.subject_id}", f"t:{card_token}" if card_token else None):
                if name:
                    self._entries[name] = (now, subject)
                    self._entries.move_to_end(name)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def evict_subject(self, subject_id: str) -> None:
        """Drop every entry of a subject (by id or by card token); a rare scan, on an erasure."""
        with self._lock:
            self.epoch += 1
            for name in [n for n, (_, s) in self._entries.items() if s.subject_id == subject_id]:
                del self._entries[name]

    def evict(self, card_token: str, subject_id: str | None) -> None:
        with self._lock:
            self.epoch += 1
            self._entries.pop(f"t:{card_token}", None)
            if subject_id:
                self._entries.pop(f"s:{subject_id}", None)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_subject() -> SubjectKey:
    return SubjectKey(uuid.uuid4().hex, os.urandom(KEY_BYTES))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS subject_keys (
    card_token TEXT PRIMARY KEY, subject_id TEXT NOT NULL UNIQUE, key BLOB NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS forgotten (subject_id TEXT PRIMARY KEY, forgotten_at TEXT NOT NULL);
"""


class SqliteSubjectKeyStore:
    """Subject keys in an embedded SQLite file (mode 0600), shared safely by several processes.

    ``secure_delete`` makes SQLite overwrite a deleted row's bytes in the file, and the rollback journal
    (never WAL, whose frames would keep old page images) is deleted after each transaction, so a forgotten
    key leaves no copy in the database files.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 10.0,
        cache_entries: int = 100_000,
        cache_ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # never readable by others, not even briefly
        self._cache = KeyCache(cache_entries, cache_ttl_s, clock)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
        if self._db.execute("PRAGMA secure_delete=ON").fetchone()[0] != 1:
            raise PrivacyError(f"SQLite refused secure_delete on {self.path}; keys could not be destroyed")
        if self._db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] != "delete":
            raise PrivacyError(f"{self.path} is in use in another journal mode; keys could outlive forget in it")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def peek(self, card_token: str) -> SubjectKey | None:
        return self._cache.get(f"t:{card_token}")

    def get_or_create(self, card_token: str) -> SubjectKey:
        cached = self._cache.get(f"t:{card_token}")
        if cached:
            return cached
        epoch = self._cache.epoch
        with self._lock:
            subject = self._select("card_token", card_token)
            if subject is None:
                # Another process may insert the same card at once: the first row wins, and both read it back.
                new = new_subject()
                self._db.execute(
                    "INSERT OR IGNORE INTO subject_keys VALUES (?, ?, ?, ?)",
                    (card_token, new.subject_id, new.key, now_iso()),
                )
                subject = self._select("card_token", card_token)
        if subject is None:
            raise PrivacyError(f"could not create a subject key in {self.path}")
        self._cache.put(epoch, subject, card_token)
        return subject

    def get_or_create_many(self, card_tokens: Sequence[str]) -> dict[str, SubjectKey]:
        """One transaction (so one journal sync) for every card not cached yet: a group commit."""
        found = {t: s for t in card_tokens if (s := self._cache.get(f"t:{t}")) is not None}
        missing = [t for t in dict.fromkeys(card_tokens) if t not in found]
        if not missing:
            return found
        epoch = self._cache.epoch
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO subject_keys VALUES (?, ?, ?, ?)",
                    [(t, (new := new_subject()).subject_id, new.key, now_iso()) for t in missing],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            for token in missing:  # a racing process's row wins over ours: read back what is stored
                subject = self._select("card_token", token)
                if subject is None:
                    raise PrivacyError(f"could not create a subject key in {self.path}")
                found[token] = subject
        for token in missing:
            self._cache.put(epoch, found[token], token)
        return found

    def find(self, card_token: str) -> SubjectKey | None:
        return self._lookup("card_token", card_token, f"t:{card_token}")

    def by_subject_id(self, subject_id: str) -> SubjectKey | None:
        return self._lookup("subject_id", subject_id, f"s:{subject_id}")

    def forget(self, card_token: str) -> str | None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                subject = self._select("card_token", card_token)
                if subject is not None:
                    self._db.execute("DELETE FROM subject_keys WHERE card_token = ?", (card_token,))
                    self._db.execute("INSERT OR IGNORE INTO forgotten VALUES (?, ?)", (subject.subject_id, now_iso()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._cache.evict(card_token, subject.subject_id if subject else None)
        return subject.subject_id if subject else None

    def drop_cached(self, subject_id: str) -> None:
        self._cache.evict_subject(subject_id)

    def is_forgotten(self, subject_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM forgotten WHERE subject_id = ?", (subject_id,)).fetchone()
        return row is not None

    def _lookup(self, column: str, value: str, cache_name: str) -> SubjectKey | None:
        cached = self._cache.get(cache_name)
        if cached:
            return cached
        epoch = self._cache.epoch
        with self._lock:
            subject = self._select(column, value)
        if subject is not None:
            self._cache.put(epoch, subject, value if column == "card_token" else None)
        return subject

    def _select(self, column: str, value: str) -> SubjectKey | None:
        query = f"SELECT subject_id, key FROM subject_keys WHERE {column} = ?"  # column is ours, never input
        row = self._db.execute(query, (value,)).fetchone()
        return SubjectKey(row[0], bytes(row[1])) if row else None
