"""The baseline's own nats-server: JetStream behind TLS with client certificates, as the platform's log is.

Not the platform's server: that one lets only the platform's principals create streams and publish
(per-principal permissions). This one trusts any certificate of the baseline's own CA, so the bare loop pays
for the same TLS link to JetStream as ingest does, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fraudshared.identity.pki import CredentialFiles
from fraudshared.nats_server import LOOPBACK, find_executable, find_free_port


class _NatsTlsEofNote(logging.Filter):
    """Drops asyncio's note that nats-py's protocol returns True from eof_received under TLS (harmless)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received" not in record.getMessage()


def hush_nats_tls_eof_note() -> None:
    """Keeps asyncio's harmless eof_received note about nats-py over TLS out of the harness's output (only it)."""
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _NatsTlsEofNote) for f in asyncio_log.filters):
        asyncio_log.addFilter(_NatsTlsEofNote())


def config(port: int, monitor_port: int, store_dir: Path, tls: CredentialFiles) -> str:
    """nats-server configuration: loopback, JetStream in `store_dir`, TLS requiring a client certificate."""
    quoted = {name: json.dumps(str(path)) for name, path in (("cert", tls.cert), ("key", tls.key), ("ca", tls.ca))}
    return "\n".join(
        [
            f"listen: {LOOPBACK}:{port}",
            f"http: {LOOPBACK}:{monitor_port}",
            "server_name: bench-baseline",
            f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}",
            f"tls {{ cert_file: {quoted['cert']}, key_file: {quoted['key']}, ca_file: {quoted['ca']}, verify: true }}",
            "",
        ]
    )


@contextlib.contextmanager
def tls_nats(directory: Path, tls: CredentialFiles, timeout_s: float = 15.0) -> Iterator[str]:
    """Runs nats-server from `directory` until the block ends; yields its tls:// URL.

    Raises:
        RuntimeError: If it exits or is not healthy within `timeout_s` (with its last log lines).
    """
    directory.mkdir(parents=True, exist_ok=True)
    port, monitor_port = find_free_port(), find_free_port()
    conf = directory / "nats-server.conf"
    conf.write_text(config(port, monitor_port, directory / "store", tls))
    log = directory / "nats-server.log"
    with log.open("ab") as out:
        process = subprocess.Popen([str(find_executable()), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(process, monitor_port, timeout_s, log)
        yield f"tls://{LOOPBACK}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_healthy(process: subprocess.Popen[bytes], monitor_port: int, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{monitor_port}/healthz", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.05)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
    raise RuntimeError(f"the baseline's nats-server did not start (exit {process.poll()}); last lines:\n{tail}")
