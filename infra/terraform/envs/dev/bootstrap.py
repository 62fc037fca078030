"""What the fraud-bootstrap Job runs as ``service:bootstrap`` before the services start (identity.tf).

Services may not create or change streams (NATS refuses them), so this creates the event log's streams
(``ensure_streams``: idempotent) and appends the role grants given as a JSON object (principal id -> role),
skipping grants already held. Reads FRAUD_NATS_URL and the bootstrap credential (FRAUD_TLS_CA_FILE,
FRAUD_BOOTSTRAP_TLS_CERT_FILE, FRAUD_BOOTSTRAP_TLS_KEY_FILE). Run as ``python -c "$(cat bootstrap.py)" '{...}'``
or ``python bootstrap.py '{...}'``.
"""

import asyncio
import json
import os
import sys

import nats

from fraudshared.events.streams import ensure_streams
from fraudshared.identity.grants import grant_role
from fraudshared.identity.tls import service_credential_files, ssl_context

GRANTED_BY = "service:bootstrap"
REASON = "initial grant by the Terraform bootstrap job"


async def main(grants: dict[str, str]) -> None:
    """Creates the streams, then appends each grant; prints what changed."""
    tls = ssl_context(service_credential_files("bootstrap"))
    nc = await nats.connect(os.environ["FRAUD_NATS_URL"], tls=tls, connect_timeout=5, max_reconnect_attempts=3)
    try:
        js = nc.jetstream(timeout=10.0)
        for stream, outcome in (await ensure_streams(js)).items():
            print(f"stream {stream}: {outcome}")
        for principal, role in grants.items():
            appended = await grant_role(js, principal, role, GRANTED_BY, REASON)
            print(f"{principal} {role}: {'granted' if appended else 'already held'}")
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
