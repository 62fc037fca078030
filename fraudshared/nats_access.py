"""Who may do what on NATS: the per-principal permission table, and the ``nats-server`` config enforcing it.

The event log is only as trustworthy as the set of processes able to append to it (issue 13, item 5). The
server requires TLS with a client certificate from the platform's CA (``verify_and_map``), and maps the
certificate's SPIFFE URI SAN (``spiffe://<trust domain>/service/ingest``) to a user below; a certificate that
names no user here is refused at connect. Each user gets allow lists (anything else is denied):

- publish: the subjects of the streams it owns (ingest appends TRANSACTIONS, ...; the notary in governance
  alone appends AUDIT), its own quarantine records, the request subjects it calls, and the JetStream API
  requests that read the streams it reads;
- subscribe: ``_INBOX.>`` (JetStream API answers, consumer deliveries, request replies) and the request
  subjects it serves; a reply goes back through ``allow_responses``, never through a publish grant;
- nobody may delete, purge or edit a stream or a stored message; only ``service:bootstrap`` (used by
  ``fraudctl up``) creates and updates streams.

docs/nats-access.md renders the table for people.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudshared.events.streams import default_specs
from fraudshared.identity.pki import CredentialFiles
from fraudshared.identity.principal import DEFAULT_TRUST_DOMAIN, Principal
from fraudshared.subjects import SCORING_RPC

ACCESS_STREAM = "ACCESS"
ACCESS_SUBJECTS = ("fraud.access.>",)
JS_API = "$JS.API"
# Requests that change or remove stored history: refused to everyone (explicit deny wins over any allow).
NEVER = (
    f"{JS_API}.STREAM.DELETE.>",
    f"{JS_API}.STREAM.PURGE.>",
    f"{JS_API}.STREAM.MSG.DELETE.>",
    f"{JS_API}.STREAM.SNAPSHOT.>",
    f"{JS_API}.STREAM.RESTORE.>",
    f"{JS_API}.STREAM.PEER.REMOVE.>",
    f"{JS_API}.STREAM.LEADER.STEPDOWN.>",
    f"{JS_API}.ACCOUNT.PURGE.>",
    f"{JS_API}.SERVER.>",
    f"{JS_API}.META.>",
)
# Stream configuration: only the bootstrap principal may create or update streams.
STREAM_ADMIN = (f"{JS_API}.STREAM.CREATE.*", f"{JS_API}.STREAM.UPDATE.*")
# What every principal may ask the JetStream API without reading any stream's messages.
JS_LOOKUPS = (f"{JS_API}.INFO", f"{JS_API}.STREAM.NAMES", f"{JS_API}.STREAM.LIST", f"{JS_API}.STREAM.INFO.*")
INBOX = "_INBOX.>"
FEATURES_RPC = "fraud.rpc.features.>"  # every partition's compute and decide subjects


@dataclass(frozen=True)
class NatsGrant:
    """What one principal may do on NATS.

    Attributes:
        appends_to: Streams whose subjects it may publish (append) to.
        reads: Streams it may read: create, fetch from, inspect and delete consumers; get messages.
        quarantines_as: Reader names whose quarantine records (``fraud.quarantine.<reader>.>``) it appends.
        requests: Core subjects it sends requests to (NATS request-reply).
        serves: Core subjects it subscribes to and answers (replies allowed once per request).
        manages_streams: Whether it may create and update streams (never delete or purge them).
    """

    appends_to: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    quarantines_as: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    serves: tuple[str, ...] = ()
    manages_streams: bool = False


def stream_subjects() -> dict[str, tuple[str, ...]]:
    """Every stream of the platform with the subjects it captures (ACCESS included even before it is declared)."""
    streams = {spec.name: spec.subjects for spec in default_specs()}
    streams.setdefault(ACCESS_STREAM, ACCESS_SUBJECTS)
    return streams


ALL_STREAMS = tuple(stream_subjects())
_EVERY_SERVICE_READS = (ACCESS_STREAM, "QUARANTINE")  # role grants; a quarantine append checks the last record


def _readers(service: str) -> tuple[str, ...]:
    """Quarantine reader names of a service: its own followers, and its grants follower (fraudshared.service)."""
    return (service, f"{service}-access")


# The table (docs/nats-access.md). Derived from the code: each service appends its own streams, follows or
# looks up what it reads, and the hot path's request-reply runs ingest -> features -> scoring -> ingest.
NATS_ACCESS: Mapping[str, NatsGrant] = {
    "service:ingest": NatsGrant(
        appends_to=("TRANSACTIONS", "LABELS", "PRIVACY"),
        reads=("TRANSACTIONS", "PREDICTIONS", "LABELS", "PRIVACY", *_EVERY_SERVICE_READS),
        quarantines_as=_readers("ingest"),
        requests=(FEATURES_RPC,),  # decide: features forwards to scoring, whose answer comes back to ingest
    ),
    "service:features": NatsGrant(
        appends_to=("FEATURES",),
        reads=("FEATURES", "LABELS", *_EVERY_SERVICE_READS),
        quarantines_as=_readers("features"),
        requests=(SCORING_RPC,),
        serves=(FEATURES_RPC,),
    ),
    "service:scoring": NatsGrant(
        appends_to=("PREDICTIONS",),
        reads=("PREDICTIONS", "MODELS", *_EVERY_SERVICE_READS),
        quarantines_as=_readers("scoring"),
        serves=(SCORING_RPC,),
    ),
    "service:governance": NatsGrant(
        appends_to=("MODELS", "AUDIT", ACCESS_STREAM),  # the notary runs inside governance: AUDIT is its alone
        reads=ALL_STREAMS,
        quarantines_as=_readers("governance"),
    ),
    "service:monitor": NatsGrant(
        appends_to=("MONITOR",),
        reads=("PREDICTIONS", "LABELS", "MONITOR", *_EVERY_SERVICE_READS),
        quarantines_as=_readers("monitor"),
    ),
    "service:bootstrap": NatsGrant(appends_to=(ACCESS_STREAM,), reads=(ACCESS_STREAM,), manages_streams=True),
    "user:dev-auditor": NatsGrant(reads=ALL_STREAMS),
    "user:dev-admin": NatsGrant(reads=ALL_STREAMS),  # grants go through AccessService (no self-grant), never direct
}


def read_api(stream: str) -> list[str]:
    """JetStream API subjects that read ``stream``: its consumers (ephemeral, ack-less) and message gets."""
    return [
        f"{JS_API}.CONSUMER.CREATE.{stream}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.*",
        f"{JS_API}.CONSUMER.DELETE.{stream}.*",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
        f"{JS_API}.CONSUMER.NAMES.{stream}",
        f"{JS_API}.CONSUMER.LIST.{stream}",
        f"{JS_API}.STREAM.MSG.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def permissions(grant: NatsGrant, streams: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """The nats-server ``permissions`` block of one grant.

    Raises:
        KeyError: If the grant names a stream that is not in ``streams``.
    """
    streams = stream_subjects() if streams is None else streams
    publish = list(JS_LOOKUPS)
    for stream in grant.appends_to:
        publish += streams[stream]
    publish += [f"fraud.quarantine.{reader}.>" for reader in grant.quarantines_as]
    publish += grant.requests
    for stream in grant.reads:
        if stream not in streams:  # a typo in the table fails here, not silently at run time
            raise KeyError(f"no stream {stream!r}")
        publish += read_api(stream)
    if grant.manages_streams:
        publish += STREAM_ADMIN
    deny = list(NEVER) if grant.manages_streams else [*NEVER, *STREAM_ADMIN]
    block: dict[str, Any] = {
        "publish": {"allow": _unique(publish), "deny": deny},
        "subscribe": {"allow": _unique([INBOX, *grant.serves])},
    }
    if grant.serves:
        block["allow_responses"] = {"max": 1}
    return block


def users(
    trust_domain: str = DEFAULT_TRUST_DOMAIN, table: Mapping[str, NatsGrant] | None = None
) -> list[dict[str, Any]]:
    """The ``authorization.users`` list: one user per principal, named by its certificate's SPIFFE id."""
    chosen = NATS_ACCESS if table is None else table
    return [
        {"user": Principal.parse(principal).spiffe_id(trust_domain), "permissions": permissions(grant)}
        for principal, grant in chosen.items()
    ]


def render_config(
    *,
    port: int,
    monitor_port: int,
    host: str,
    store_dir: str | Path,
    server_name: str,
    tls: CredentialFiles,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    table: Mapping[str, NatsGrant] | None = None,
) -> str:
    """The nats-server configuration: JetStream, TLS with required client certificates, users per principal.

    JSON is valid nats-server configuration syntax; strings are quoted, so ``$JS...`` is never a variable.

    Args:
        port: Client port.
        monitor_port: HTTP monitoring port (``/healthz``), bound to ``host`` like clients.
        host: Address to bind (loopback in the local runtime).
        store_dir: JetStream storage directory.
        server_name: Stable server name (JetStream keys its state on it).
        tls: The server's certificate, key and the CA that client certificates must chain to.
        trust_domain: SPIFFE trust domain of the principals' certificates.
        table: Principal id -> grant; `NATS_ACCESS` when omitted.

    Returns:
        The configuration text, for ``nats-server -c``.
    """
    config = {
        "server_name": server_name,
        "host": host,
        "port": port,
        "http": f"{host}:{monitor_port}",
        "jetstream": {"store_dir": str(store_dir)},
        "tls": {
            "cert_file": str(tls.cert),
            "key_file": str(tls.key),
            "ca_file": str(tls.ca),
            "verify_and_map": True,
            "timeout": 5,
        },
        "authorization": {"users": users(trust_domain, table)},
    }
    header = "# Generated by fraudshared.nats_access.render_config: edit the table there, not this file.\n"
    return header + json.dumps(config, indent=2) + "\n"
