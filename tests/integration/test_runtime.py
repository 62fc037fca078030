"""`fraudctl up/status/logs/down` against the real nats-server and tritonserver, through the real CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from cryptography import x509

from fraud.common.v1 import decision_pb2, money_pb2
from fraud.ingest.v1 import ingest_service_pb2 as ingest_pb
from fraud.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from fraudctl.credentials import DEV_ROLES
from fraudctl.procfile import load_plan
from fraudshared.identity import ClientCredential, CredentialFiles, DevCA, Principal, secure_channel, ssl_context

pytestmark = pytest.mark.integration


def fraudctl(var: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs ``fraudctl ARGS --var-dir VAR`` (ARGS may start with global options such as ``--as NAME``)."""
    environ = {**os.environ, "COLUMNS": "200", **(env or {})}
    argv = [sys.executable, "-m", "fraudctl", *args, "--var-dir", str(var)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=environ, check=False)


def processes_referencing(var: Path) -> list[str]:
    """Live processes (not zombies) whose command line, cwd or environment names ``var``."""
    needle, found = str(var.resolve()), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            where = os.readlink(entry / "cwd")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline or where.startswith(needle) or needle in environ:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def count_nats_servers(var: Path) -> int:
    return sum("nats-server" in p for p in processes_referencing(var))


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def var(tmp_path: Path) -> Iterator[Path]:
    var = tmp_path / "var"
    yield var
    fraudctl(var, "down")
    assert processes_referencing(var) == []


def test_up_status_twin_refused_logs_down(var: Path) -> None:
    started = fraudctl(var, "up", "--only", "nats,triton")
    assert started.returncode == 0, started.stdout + started.stderr

    status = fraudctl(var, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = [line for line in status.stdout.splitlines() if "nats" in line or "triton" in line]
    assert len(rows) == 2 and all("SERVING" in row and "NOT_SERVING" not in row for row in rows), status.stdout
    assert all(("RUNNING" in row or "STARTING" in row) and row.split()[-2] == "0" for row in rows), status.stdout
    assert any(line.split()[1] == "watchdog" for line in status.stdout.splitlines() if len(line.split()) > 1)
    plan = load_plan(var)
    assert plan is not None and plan.address("nats") in status.stdout and plan.address("triton") in status.stdout
    assert count_nats_servers(var) == 1

    twin = fraudctl(var, "up", "--only", "nats,triton")
    assert_one_clear_line(twin, "already running (pid", "fraudctl down")
    assert count_nats_servers(var) == 1

    logs = fraudctl(var, "logs", "triton", "-n", "20")
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr
    assert len(logs.stdout.splitlines()) <= 20 and "server.cc" in logs.stdout  # tritonserver's own lines
    every = fraudctl(var, "logs", "-n", "5")
    assert {line.split(" | ")[0] for line in every.stdout.splitlines()} == {"nats", "triton", "watchdog", "supervisord"}

    stopped = fraudctl(var, "down")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert processes_referencing(var) == []
    assert load_plan(var) is None

    again = fraudctl(var, "down")
    assert again.returncode == 0 and "not running" in again.stdout
    after = fraudctl(var, "status")
    assert after.returncode == 1 and "not running" in after.stdout


def test_a_pinned_port_in_use_is_one_clear_line(var: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = fraudctl(var, "up", "--only", "nats", env={"FRAUD_NATS_PORT": str(port)})
    assert_one_clear_line(result, f"port {port} (FRAUD_NATS_PORT) is already in use")
    assert processes_referencing(var) == []


def test_an_unwritable_var_dir_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    result = fraudctl(blocker / "var", "up", "--only", "nats")
    assert_one_clear_line(result, "is not writable")


def test_an_unknown_component_is_one_clear_line(var: Path) -> None:
    assert_one_clear_line(fraudctl(var, "up", "--only", "nats,bogus"), "unknown component", "bogus")


def test_a_component_crashing_at_startup_is_named_with_its_log(var: Path) -> None:
    var.mkdir()
    (var / "nats").write_text("a file where JetStream wants its directory")
    result = fraudctl(var, "up", "--only", "nats,triton", env={"FRAUD_SUPERVISOR_STARTRETRIES": "1"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, *details = result.stderr.splitlines()
    assert "nats exited during startup (exit status 1; not expected), FATAL after repeated quick exits" in first
    assert "stopped everything" in first
    assert any("not a directory" in line for line in details), result.stderr
    assert any("gave up: nats entered FATAL state" in line for line in details), result.stderr
    assert processes_referencing(var) == []


def test_a_component_not_healthy_in_time_stops_everything(var: Path) -> None:
    result = fraudctl(var, "up", "--only", "nats,triton", "--timeout", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not healthy within 0 s" in result.stderr.splitlines()[0]
    assert processes_referencing(var) == []


def test_supervisord_gone_shows_in_status_and_down_cleans_up(var: Path) -> None:
    assert fraudctl(var, "up", "--only", "nats").returncode == 0
    supervisord = next(int(p.split(":")[0]) for p in processes_referencing(var) if "supervisord" in p)
    os.kill(supervisord, signal.SIGKILL)  # its programs live on, orphaned: `down` must still find them
    status = fraudctl(var, "status")
    assert status.returncode == 1 and "not running (stray pids" in status.stdout, status.stdout
    assert count_nats_servers(var) == 1
    assert fraudctl(var, "down").returncode == 0
    assert processes_referencing(var) == [] and load_plan(var) is None


def test_two_concurrent_ups_start_one_runtime(var: Path) -> None:
    argv = [sys.executable, "-m", "fraudctl", "up", "--only", "nats", "--var-dir", str(var)]
    racers = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(r.wait(timeout=120), r.communicate()[1]) for r in racers]
    assert sorted(rc for rc, _ in results) == [0, 1], results
    loser = next(err for rc, err in results if rc == 1)
    assert "already running" in loser or "another `fraudctl up` is starting" in loser
    assert count_nats_servers(var) == 1


def test_down_with_nothing_running_removes_what_a_killed_run_left_in_run_dir(var: Path) -> None:
    run = var / "run"
    run.mkdir(parents=True)
    left = [run / "supervisord.pid", run / "plan.json", run / "supervisor.sock"]
    for path in left:
        path.write_text("left by a run whose processes were all killed\n")
    stopped = fraudctl(var, "down")
    assert stopped.returncode == 0 and "not running" in stopped.stdout, stopped.stdout + stopped.stderr
    assert [path for path in left if path.exists()] == []


# ---- identity: the development PKI, NATS over TLS, calls as a named principal (issue 13) ----------------------


def nats_check(url: str, files: CredentialFiles | None, plain: bool = False) -> int | str:
    """Messages on ACCESS read over ``url`` with ``files``' certificate, or why the connection failed."""

    async def run() -> int | str:
        tls = {} if plain else {"tls": ssl_context(files) if files else _ca_only(url), "tls_hostname": "localhost"}
        try:
            nc = await nats.connect(
                url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False, error_cb=_quiet, **tls
            )
        except Exception as exc:  # nats raises several unrelated types for a refused connection
            return f"refused: {type(exc).__name__}"
        try:
            return (await nc.jetstream().stream_info("ACCESS")).state.messages
        finally:
            await nc.close()

    return asyncio.run(run())


_CA: dict[str, Path] = {}


def _ca_only(url: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(_CA[url]))  # trusts the server, presents no certificate
    return context


async def _quiet(_: Exception) -> None:
    return None


def test_up_issues_credentials_keeps_them_across_restarts_and_nats_takes_only_them(var: Path) -> None:
    started = fraudctl(var, "up", "--only", "nats")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "issued 16 certificate(s)" in started.stdout and "granted 9 development role(s)" in started.stdout
    assert "--as approver" in started.stdout and "credentials/scorer" in started.stdout
    pki, creds = var / "pki", var / "credentials"
    assert stat.S_IMODE((pki / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "triton-admin-key").stat().st_mode) == 0o600
    for name in DEV_ROLES:
        files = CredentialFiles.in_dir(creds / name)
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert uris.get_values_for_type(x509.UniformResourceIdentifier) == [f"spiffe://fraud.local/user/dev-{name}"]
    for service in ("ingest", "features", "scoring", "governance", "monitor", "nats", "bootstrap"):
        assert CredentialFiles.in_dir(pki / "services" / service).read()
    before = {p: p.read_bytes() for p in (pki / "ca.pem", creds / "scorer" / "cert.pem")}

    plan = load_plan(var)
    assert plan is not None
    url = plan.env["FRAUD_NATS_URL"]
    assert url.startswith("tls://127.0.0.1:")
    _CA[url] = pki / "ca.pem"
    assert nats_check(url, CredentialFiles.in_dir(creds / "auditor")) == 9  # the nine first grants
    assert str(nats_check(url, None)).startswith("refused")  # TLS, but no client certificate
    assert str(nats_check(url.replace("tls://", "nats://"), None, plain=True)).startswith("refused")

    assert fraudctl(var, "down").returncode == 0
    shutil.rmtree(creds / "analyst")  # a lost credential is issued again, alone
    again = fraudctl(var, "up", "--only", "nats")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "issued 1 certificate(s)" in again.stdout and "development role(s)" not in again.stdout
    assert {p: p.read_bytes() for p in before} == before  # same CA, same certificates
    plan = load_plan(var)
    assert plan is not None
    _CA[plan.env["FRAUD_NATS_URL"]] = pki / "ca.pem"
    assert nats_check(plan.env["FRAUD_NATS_URL"], CredentialFiles.in_dir(creds / "analyst")) != 9  # not a reader
    assert nats_check(plan.env["FRAUD_NATS_URL"], CredentialFiles.in_dir(creds / "admin")) == 9  # no grant twice


def test_a_call_as_the_scorer_works_and_without_a_certificate_is_refused(var: Path) -> None:
    started = fraudctl(var, "up", "--timeout", "150")
    assert started.returncode == 0, started.stdout + started.stderr
    plan = load_plan(var)
    assert plan is not None
    ingest, creds = plan.address("ingest"), var / "credentials"
    request = ingest_pb.ScoreTransactionRequest(
        transaction_id=f"rt-{uuid.uuid4().hex[:12]}",
        pan="4111111111111111",
        amount=money_pb2.Money(amount_minor=1250, currency="EUR"),
        terminal_id="T-1",
        channel=decision_pb2.CHANNEL_CARD_PRESENT,
    )
    request.event_time.GetCurrentTime()
    scorer = ClientCredential(ca=creds / "scorer" / "ca.pem", files=CredentialFiles.in_dir(creds / "scorer"))
    with secure_channel(ingest, scorer) as channel:
        reply = ingest_grpc.IngestServiceStub(channel).ScoreTransaction(request, timeout=20)
    assert reply.decision != decision_pb2.DECISION_UNSPECIFIED

    ca_only = grpc.ssl_channel_credentials(root_certificates=(creds / "scorer" / "ca.pem").read_bytes())
    with grpc.secure_channel(ingest, ca_only) as channel, pytest.raises(grpc.RpcError) as refused:
        ingest_grpc.IngestServiceStub(channel).ScoreTransaction(request, timeout=10)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    with grpc.insecure_channel(ingest) as channel, pytest.raises(grpc.RpcError) as plaintext:
        ingest_grpc.IngestServiceStub(channel).ScoreTransaction(request, timeout=10)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE

    listed = fraudctl(var, "--as", "auditor", "model", "list")
    assert listed.returncode == 0 and "no model versions registered" in listed.stdout, listed.stderr
    denied = fraudctl(var, "--as", "scorer", "model", "list")
    assert_one_clear_line(denied, "PERMISSION_DENIED", "user:dev-scorer")
    nobody = fraudctl(var, "model", "list", env={"FRAUD_CREDENTIAL": "", "FRAUD_TOKEN_FILE": ""})
    assert_one_clear_line(nobody, "no credential: pass --as <name>")
    other = DevCA.load_or_create(var.parent / "other-ca").issue(Principal("user", "dev-auditor"), var.parent / "other")
    stranger = fraudctl(var, "model", "list", env={"FRAUD_CREDENTIAL": str(other.cert.parent)})
    assert_one_clear_line(stranger, "UNAVAILABLE: TLS handshake failed", "another CA")
