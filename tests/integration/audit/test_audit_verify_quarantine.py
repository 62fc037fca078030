"""``fraudctl audit verify`` reports unreadable and quarantined events by stream and sequence (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import wrappers_pb2
from nats.js import JetStreamContext

from fraudshared.events.envelope import EnvelopeError, event_id, new_envelope, to_nats
from fraudshared.events.quarantine import Quarantine
from fraudshared.events.store import EventStore, UnreadableEvent
from fraudshared.events.upcasting import UpcastError
from fraudshared.nats_server import NatsServer
from tests.integration.audit.audit_support import T0, Cli, append_labels, new_stream, seal

pytestmark = pytest.mark.integration


@pytest.mark.asyncio(loop_scope="session")
async def test_unreadable_and_quarantined_events_are_listed_and_the_rest_still_verifies(
    server: NatsServer, js: JetStreamContext, var_dir: Path
) -> None:
    cli, store = Cli(server, var_dir), EventStore(js)
    spec = await new_stream(js)
    subject = spec.subjects[0].removesuffix(">") + "raw"
    await append_labels(js, spec, 1, 5)
    garbage = await js.publish(subject, b"\xffgarbage")  # seq 6
    wrong = new_envelope(
        wrappers_pb2.StringValue(value="x"), source="/t", subject="s", event_id=event_id("X", "q"), time=T0,
        schema_version=1,
    )  # fmt: skip
    headers, body = to_nats(wrong)
    await js.publish(subject, body, headers=headers)  # seq 7: readable, but no reader takes it
    await append_labels(js, spec, 8, 10)
    await seal(js, var_dir, [(spec.name, spec.subjects[0])])
    raw = await js.get_msg(spec.name, garbage.seq)
    error = EnvelopeError("not an envelope")
    unreadable = UnreadableEvent(spec.name, 6, raw.subject or "", dict(raw.headers or {}), raw.data or b"", error)
    await Quarantine(store, "monitor").unreadable(unreadable)
    await Quarantine(store, "features").failed(spec.name, 7, subject, wrong, UpcastError("no upcaster"))

    out = await cli("verify", "--stream", spec.name)
    assert "verified 10 events in 1 checkpoints over 1 stream(s)" in out
    assert f"{spec.name}: 1 event(s) are not readable envelopes" in out and "seq 6" in out
    assert "monitor (unreadable envelope)" in out and "features (unparsable payload)" in out
    assert "2 event(s) unreadable or quarantined" in out
    out = await cli("verify", "--stream", spec.name, "--from", "7", "--to", "10")  # the window filters the list
    assert "monitor (unreadable envelope)" not in out and "features (unparsable payload)" in out
    out = await cli("verify", "--stream", spec.name, "--strict", code=1)
    assert "NOT CLEAN (--strict)" in out
