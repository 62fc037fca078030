"""Feature-state snapshot files: marshal round trip, and anything else is ignored (the stream is replayed)."""

from __future__ import annotations

import marshal
from pathlib import Path

import numpy as np

from fraudml.datagen import generate
from fraudml.train import _stream, customer_card_key
from fraudshared.features import FeatureEngine, batch_features, known_labels
from services.features.adapters.snapshots import FileSnapshotStore
from services.features.service_layer.handlers import FeatureState


def test_a_snapshot_file_restores_the_state_exactly(tmp_path: Path) -> None:
    stream = _stream(generate(n_customers=80, n_terminals=80, n_days=20, seed=4), customer_card_key)
    labels, half = known_labels(stream), len(stream) // 2
    state = FeatureState(last_seq=half, labels_seq=3)
    batch_features(stream.iloc[:half], state.engine, labels=labels)
    store = FileSnapshotStore(tmp_path / "features" / "snapshot-0.marshal")
    store.save(state.snapshot([0]))
    loaded = store.load()
    assert loaded is not None and loaded["partitions"] == [0]
    restored = FeatureState.from_snapshot(loaded)
    assert (restored.last_seq, restored.labels_seq) == (half, 3)
    continued = batch_features(stream.iloc[half:], restored.engine, labels=labels)
    assert np.array_equal(continued, batch_features(stream, labels=labels)[half:])
    assert any(card.frauds for card in restored.engine.cards.values())  # labels came back too


def test_other_versions_and_damaged_files_are_ignored(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path / "snapshot.marshal")
    assert store.load() is None
    store.path.write_bytes(marshal.dumps({"format": "fraud-features-snapshot/marshal/py2.7", "last_seq": 1}))
    assert store.load() is None
    store.path.write_bytes(b"\x00not marshal")
    assert store.load() is None
    store.path.write_text('{"last_seq": 5}')  # an old JSON snapshot
    assert store.load() is None


def test_taking_a_snapshot_copies_references_not_values() -> None:
    engine = FeatureEngine()
    stream = _stream(generate(n_customers=30, n_terminals=30, n_days=5, seed=2), customer_card_key)
    batch_features(stream, engine)
    card = next(iter(engine.cards.values()))
    taken = card.to_dict()["events"]
    assert isinstance(taken, tuple) and taken[0] is card.events[0]  # the same immutable entries
