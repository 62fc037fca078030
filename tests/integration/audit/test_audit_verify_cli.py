"""``fraudctl audit verify`` against a nats-server of its own, whose file store the tests tamper with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from fraud.events.v1 import audit_events_pb2 as audit_pb
from fraudshared.audit.keys import SIGNING_SECRET_KEY, SIGNING_SECRET_PATH, load_signing_key
from fraudshared.events.envelope import from_nats
from fraudshared.events.streams import ensure_streams
from fraudshared.nats_server import NatsServer
from fraudshared.secrets import DevSecretStore, dev_secrets_file
from tests.integration.audit.audit_support import (
    Cli,
    Governance,
    append_labels,
    new_stream,
    reconnect,
    records,
    restart_with,
    seal,
)

pytestmark = pytest.mark.integration


# ---- a clean log, tampering, bad input -------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_clean_verify_is_recorded_and_a_flipped_byte_is_named(
    server: NatsServer, js: JetStreamContext, var_dir: Path, governance: Governance
) -> None:
    cli = Cli(server, var_dir, governance.address)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 25)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])
    await append_labels(js, spec, 26, 27)  # after the last checkpoint

    out = await cli("verify", "--stream", spec.name, "--actor", "alice")
    assert "verified 25 events in 3 checkpoints over 1 stream(s); 2 event(s) not yet sealed" in out
    run = from_nats(*(lambda m: (m.headers, m.data))(await js.get_last_msg("AUDIT", "fraud.audit.commands.verify")))
    recorded = run.payload(audit_pb.AuditCommandRun)
    assert (recorded.actor, recorded.command, recorded.exit_code) == ("user:dev-auditor", "audit verify", 0)
    assert f"stream={spec.name}" in recorded.arguments and recorded.arguments[-1] == "note=alice"  # --actor: a note

    def flip(msgs: Path) -> None:
        blk = next(msgs.glob("*.blk"))
        data = bytearray(blk.read_bytes())
        data[data.index(b"MARK000007") + 5] ^= 0x01
        blk.write_bytes(bytes(data))

    restart_with(server, spec.name, flip)
    await reconnect(js)
    out = await cli("verify", "--stream", spec.name, code=1)
    assert f"{spec.name} seq 7: missing or unreadable (sealed in checkpoint {spec.name}[1..10])" in out
    assert "NOT VERIFIED" in out
    out = await cli("verify", "--stream", spec.name, "--from", "11", "--to", "25")  # the other ranges still verify
    assert "verified 15 events in 2 checkpoints" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_a_removed_message_and_a_truncated_stream_are_named(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 20)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])

    def remove(seqs: set[int]) -> Callable[[Path], None]:
        def edit(msgs: Path) -> None:
            blk = next(msgs.glob("*.blk"))
            data = bytearray(blk.read_bytes())
            for offset, length, seq in sorted(records(bytes(data)), reverse=True):
                if seq in seqs:
                    del data[offset : offset + length]
            blk.write_bytes(bytes(data))
            (msgs / "index.db").unlink(missing_ok=True)  # make the server rebuild its index from the blocks

        return edit

    restart_with(server, spec.name, remove({13, 20}))
    await reconnect(js)
    out = await cli("verify", "--stream", spec.name, code=1)
    assert f"{spec.name} seq 13: missing or unreadable (sealed in checkpoint {spec.name}[11..20])" in out
    assert f"{spec.name} seq 19: the stream ends at 19 but checkpoints seal up to 20" not in out  # seq 20 is named
    assert f"{spec.name} seq 20:" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_a_rewritten_stream_names_the_altered_event(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 12)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])
    # Deleting a whole stream is the one rewrite JetStream allows an operator: recreate it with one change.
    await js.delete_stream(spec.name)
    await ensure_streams(js, [spec])
    await append_labels(js, spec, 1, 12, changed=4)

    out = await cli("verify", "--stream", spec.name, code=1)
    assert (
        f"{spec.name} seq 4: event hash" in out
        and f"differs from the one sealed in checkpoint {spec.name}[1..10]" in out
    )
    assert "seq 5" not in out


@pytest.mark.asyncio(loop_scope="session")
async def test_keys_wrong_and_rotated(server: NatsServer, js: JetStreamContext, tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    streams = [(spec.name, spec.subjects[0])]
    await append_labels(js, spec, 1, 10)
    await seal(js, var_dir, streams)
    secrets = DevSecretStore(dev_secrets_file(var_dir, "governance"))
    old = load_signing_key(secrets)
    secrets.put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "ab" * 32})  # rotation: version 2
    await append_labels(js, spec, 11, 20)
    await seal(js, var_dir, streams)

    out = await cli("verify", "--stream", spec.name)  # both versions come from the secrets store
    assert "verified 20 events in 2 checkpoints" in out and f"{old.key_id} (v1)" in out

    out = await cli("verify", "--stream", spec.name, "--public-key", old.public_key.hex(), code=1)
    new = load_signing_key(secrets)
    assert f"checkpoint {spec.name}[11..20]: signed with key {new.key_id} (version 2), which is not among" in out
    out = await cli("verify", "--stream", spec.name, "--public-key", "12" * 32, code=1)
    assert f"signed with key {old.key_id} (version 1)" in out

    other = tmp_path / "other-var"  # a store whose key never signed anything
    out = await Cli(server, other)("verify", "--stream", spec.name, code=1)
    assert "not among the verifying keys" in out


@pytest.mark.asyncio(loop_scope="session")
async def test_bad_input_is_one_line_and_a_non_zero_exit(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli = Cli(server, var_dir)
    spec = await new_stream(js)
    await append_labels(js, spec, 1, 5)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])], every_n=5)
    await append_labels(js, spec, 6, 6)

    assert "there is no stream 'NOPE'" in await cli("verify", "--stream", "NOPE", code=2)
    out = await cli("verify", "--stream", spec.name, "--from", "3", "--to", "99", code=2)
    assert f"range 3..99 does not exist in {spec.name} (sequences 1..6)" in out
    assert "--from/--to need --stream" in await cli("verify", "--from", "1", code=2)
    out = await cli("verify", "--stream", spec.name, "--from", "5", "--to", "6", code=1)
    assert "sequences 6..6 are not sealed by any checkpoint yet" in out
    assert "unknown transaction 'tx-nope'" in await cli("prove", "--transaction", "tx-nope", code=2)
    assert "is not a transaction id" in await cli("prove", "--transaction", "a.b", code=2)
    assert "cannot connect to NATS" in await cli("verify", code=3, nats_url="nats://127.0.0.1:1")
    broken = var_dir / "broken"
    DevSecretStore(dev_secrets_file(broken, "governance")).put(SIGNING_SECRET_PATH, {SIGNING_SECRET_KEY: "not-hex"})
    out = await Cli(server, broken)("verify", "--stream", spec.name, code=3)
    assert "cannot read the verifying keys" in out and "is not the hex of a 32-byte seed" in out
