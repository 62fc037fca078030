"""``fraudctl audit prove|explain`` when a transaction's event is missing from the store or cannot be read."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from fraudshared import subjects
from fraudshared.events.streams import ensure_streams
from fraudshared.nats_server import NatsServer
from services.governance.notary.service import audited_streams
from tests.integration.audit.audit_support import Cli, decide, reconnect, restart_with, seal

pytestmark = pytest.mark.integration


def drop_record_of(marker: bytes) -> object:
    """A file-store edit that corrupts the one record holding `marker` (the server drops it on start)."""

    def edit(msgs: Path) -> None:
        for blk in msgs.glob("*.blk"):
            data = bytearray(blk.read_bytes())
            if marker in data:
                data[data.index(marker) + 2] ^= 0x01
                blk.write_bytes(bytes(data))
        (msgs / "index.db").unlink(missing_ok=True)  # rebuilt from the blocks, without the damaged record

    return edit


@pytest.mark.asyncio(loop_scope="session")
async def test_prove_fails_naming_the_stream_when_an_event_is_missing_or_unreadable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("prove-missing")
    with NatsServer(root / "nats") as srv:
        nc = await nats.connect(srv.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            js = nc.jetstream(timeout=5.0)
            await ensure_streams(js)
            for n in range(6):
                await decide(js, f"pm-{n}", f"card-{n}")
            # pm-junk's FeatureVectorComputed is a message that is no envelope (the first, so the record).
            await decide(js, "pm-junk", "card-9", features_too=False)
            junk_on = subjects.feature_vector_computed("card-9", "pm-junk")
            junk = await js.publish(junk_on, b"\x00 not an envelope")
            await seal(js, root / "var", audited_streams(), every_n=4)
            cli = Cli(srv, root / "var")

            assert "proven: 3 event(s) of transaction pm-2" in await cli("prove", "--transaction", "pm-2")
            out = await cli("prove", "--transaction", "pm-junk", code=1)
            assert f"NOT PROVEN: 1 of 3 event(s) of pm-junk; FEATURES sequence {junk.seq} is unreadable" in out
            out = await cli("explain", "--transaction", "pm-junk", code=1)
            assert f"FEATURES sequence {junk.seq} is unreadable" in out and "APPROVE" in out

            restart_with(srv, "FEATURES", drop_record_of(b"FeatureVectorComputed:pm-2"))  # type: ignore[arg-type]
            await reconnect(js)
            out = await cli("prove", "--transaction", "pm-2", code=1)
            assert "NOT PROVEN: 1 of 3 event(s) of pm-2; FEATURES: no FeatureVectorComputed of this transaction" in out
            # The file store truncates a block at a damaged record: the stream now ends before it.
            assert "FEATURES ends at sequence 2, but checkpoints seal it up to 7" in out
            out = await cli("prove", "--transaction", "pm-1", code=1)  # stored, but its checkpoint's range is not
            assert "FEATURES seq 3 (sealed in checkpoint FEATURES[1..4]) is missing or unreadable" in out
        finally:
            await nc.close()
