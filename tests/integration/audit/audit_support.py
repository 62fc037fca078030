"""Helpers shared by the ``fraudctl audit`` tests: streams to tamper with, a notary run, the CLI, the file store."""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nats.js import JetStreamContext
from typer.testing import CliRunner

from fraud.common.v1 import decision_pb2, money_pb2
from fraud.events.v1 import transaction_events_pb2 as tx_events
from fraudctl.cli import app
from fraudshared import subjects
from fraudshared.events.envelope import event_id, new_envelope
from fraudshared.events.store import EventStore
from fraudshared.events.streams import StreamSpec, ensure_streams
from fraudshared.nats_server import NatsServer
from fraudshared.secrets import DevSecretStore, dev_secrets_file
from services.governance.notary.adapters.log import JetStreamNotaryLog
from services.governance.notary.adapters.signing import SecretsSigningKeys
from services.governance.notary.service import Notary, NotaryConfig
from tests.fixtures.identity import session_pki

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HBIT = 1 << 31  # JetStream file store: the record length's high bit says "has headers"


async def new_stream(js: JetStreamContext) -> StreamSpec:
    suffix = uuid.uuid4().hex[:10]
    spec = StreamSpec(name=f"TAMPER_{suffix.upper()}", subjects=(f"tamper.{suffix}.>",), description="tamper test")
    await ensure_streams(js, [spec])
    return spec


async def decide(js: JetStreamContext, transaction_id: str, card: str, *, features_too: bool = True) -> None:
    """The three events of one decision, on the subjects ingest, features and scoring use (features optional)."""
    store = EventStore(js)
    amount = money_pb2.Money(amount_minor=1250, currency="EUR")
    when = T0
    received = tx_events.TransactionReceived(
        schema_version=1, transaction_id=transaction_id, card_token=card, terminal_id="T1", amount=amount
    )
    features = tx_events.FeatureVectorComputed(
        schema_version=1, transaction_id=transaction_id, card_token=card, values=[1.0, 2.5], feature_set_version="v1"
    )
    prediction = tx_events.PredictionMade(
        schema_version=1,
        transaction_id=transaction_id,
        card_token=card,
        score=0.12,
        decision=decision_pb2.DECISION_APPROVE,
    )
    for message, subject in (
        (received, subjects.transaction_received(card, transaction_id)),
        (features, subjects.feature_vector_computed(card, transaction_id)),
        (prediction, subjects.prediction_made(card, transaction_id)),
    ):
        if message is features and not features_too:
            continue
        kind = message.DESCRIPTOR.name
        envelope = new_envelope(
            message,
            source="/test",
            subject=transaction_id,
            event_id=event_id(kind, transaction_id),
            time=when,
            schema_version=1,
        )
        await store.append(envelope, subject=subject, expected_last_subject_seq=0)


async def append_labels(js: JetStreamContext, spec: StreamSpec, first: int, last: int, changed: int = 0) -> None:
    prefix = spec.subjects[0].removesuffix(">")
    for n in range(first, last + 1):
        message = tx_events.LabelReported(schema_version=1, transaction_id=f"MARK{n:06d}", is_fraud=n == changed)
        envelope = new_envelope(
            message,
            source="/test",
            subject=f"tx-{n}",
            event_id=event_id("LabelReported", f"{spec.name}-{n}"),
            time=T0 + timedelta(seconds=n),
            schema_version=1,
        )
        await EventStore(js).append(envelope, subject=f"{prefix}{n}")


async def seal(js: JetStreamContext, var_dir: Path, streams: list[tuple[str, str]], every_n: int = 10) -> None:
    """Runs a notary until every stream is sealed up to its end."""
    secrets = DevSecretStore(dev_secrets_file(var_dir, "governance"))
    notary = Notary(
        JetStreamNotaryLog(js, EventStore(js)),
        SecretsSigningKeys(secrets),
        streams,
        NotaryConfig(every_n=every_n, every_s=0.1),
    )
    ends = {name: (await js.stream_info(name)).state.last_seq for name, _ in streams}
    stop = asyncio.Event()
    task = asyncio.create_task(notary.run(stop))
    try:
        async with asyncio.timeout(15):
            while any(notary.sealed_up_to.get(name, -1) < end for name, end in ends.items()):  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polls the notary's progress
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@dataclass(frozen=True)
class Governance:
    """Governance's AuditService on real mTLS gRPC with the auth interceptor, appending to the tests' AUDIT."""

    address: str


class Cli:
    """``fraudctl audit ...`` in process; with ``governance`` (host:port) it records its runs there as ``who``."""

    def __init__(self, server: NatsServer, var_dir: Path, governance: str | None = None, who: str = "dev-auditor"):
        self.server, self.var_dir, self.governance, self.who = server, var_dir, governance, who

    async def __call__(self, *args: str, code: int | None = 0, nats_url: str | None = None) -> str:
        """The command's output; its exit code must be ``code`` (None: any, for a log other tests may have broken)."""
        argv = ["audit", *args, "--nats", nats_url or self.server.url, "--var-dir", str(self.var_dir)]
        env = {"COLUMNS": "220", "USER": "auditor", "FRAUD_GOVERNANCE_ADDR": self.governance or ""}
        env["FRAUD_CREDENTIAL"] = str(session_pki().files(self.who).cert.parent)
        result = await asyncio.to_thread(CliRunner().invoke, app, argv, env=env)
        output = result.stdout + result.stderr
        assert code is None or result.exit_code == code, (argv, output, result.exception)
        assert "Traceback" not in output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception  # no crash
        return output


def restart_with(server: NatsServer, stream: str, edit: Callable[[Path], None]) -> None:
    """Stops the server, lets ``edit`` change the stream's message directory, starts it again."""
    server.stop()
    msgs = server.store_dir / "jetstream" / "$G" / "streams" / stream / "msgs"
    edit(msgs)
    server.start()


def records(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(offset, length, sequence) of each message record in a .blk file."""
    offset = 0
    while offset + 22 <= len(data):
        length, seq = struct.unpack_from("<IQ", data, offset)
        length &= ~HBIT
        if length == 0:
            return
        yield offset, length, seq
        offset += length


async def reconnect(js: JetStreamContext) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                await js.account_info()
                return
            except Exception:
                await asyncio.sleep(0.1)
