"""The local runtime: NATS, Triton and the five services as processes supervised by supervisord.

`up` checks what would make the start fail (each with one clear line), writes the plan and supervisord's
configuration under ``var/run/``, starts supervisord detached in its own session, and waits until every
component is healthy. supervisord restarts any component that exits (see `fraudctl.supervisor_conf`), and
its watchdog program restarts a hung Triton or NATS (`fraudctl.watchdog`). `status`, `logs` and `down` find
it again through ``var/run/supervisord.pid``, its socket ``var/run/supervisor.sock`` and ``var/run/plan.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console

from fraudctl import health, preflight, processes, supervision_log, supervisor_conf
from fraudctl.bootstrap import BootstrapError, bootstrap
from fraudctl.credentials import BOOTSTRAP, IssuedCredentials, ensure_credentials, print_usage, trust_domain
from fraudctl.preflight import RuntimeErrorWithHint
from fraudctl.procfile import (
    ALL,
    ROOT,
    SERVICES,
    Paths,
    Plan,
    build_plan,
    load_plan,
    nats_config_text,
    token_address,
    write_plan,
)
from fraudctl.supervision_status import print_status, process_infos
from fraudctl.supervisor_conf import WATCHDOG
from fraudctl.supervisor_rpc import SupervisorClient
from fraudshared.config import ConfigError
from fraudshared.identity.oidc import OidcConfig


def up(var_dir: Path, components: Sequence[str] = ALL, timeout: float = 90.0, console: Console | None = None) -> Plan:
    """Starts the runtime and waits until every component is healthy.

    Args:
        var_dir: Var dir for state, logs and run files.
        components: Components to run (default: all).
        timeout: Seconds to wait for health before stopping everything.
        console: Where progress goes.

    Returns:
        The running plan.

    Raises:
        RuntimeErrorWithHint: If already running, a preflight check fails, or a component is not healthy in time.
    """
    console = console or Console()
    paths = Paths(var_dir.resolve())
    preflight.check_components(components)
    components = [c for c in ALL if c in components]  # canonical order, no duplicates
    preflight.check_writable(paths)
    policy = preflight.check_settings(paths)
    try:
        OidcConfig.from_env()  # FRAUD_OIDC_ISSUER without its audience or JWKS URL: say so now, not per service
    except ConfigError as exc:
        raise RuntimeErrorWithHint(str(exc)) from None
    with _up_lock(paths):
        pid = processes.supervisord_pid(paths)
        if pid:
            raise RuntimeErrorWithHint(f"already running (pid {pid}); use `fraudctl status` or `fraudctl down`")
        strays = processes.our_processes(paths)
        if strays:
            raise RuntimeErrorWithHint(f"processes of an earlier run are alive (pids {strays}); run `fraudctl down`")
        preflight.check_binaries(components)
        ports = preflight.ports(components)
        if "triton" in components:
            from fraudshared import triton_server

            try:
                paths.model_repo.mkdir(parents=True, exist_ok=True)
                triton_server.prepare_backends(paths.backend_dir)
            except OSError as exc:
                raise RuntimeErrorWithHint(f"cannot prepare Triton's dirs under {paths.var_dir}: {exc}") from None
        issued = _credentials(paths, console)
        plan = build_plan(paths.var_dir, ports, sys.executable, components, os.environ)
        write_plan(plan)
        # With NATS in the plan, the services wait until `up` has made the streams and the first grants.
        deferred = [c for c in components if c in SERVICES] if "nats" in components else []
        try:
            if "nats" in components:
                paths.nats_config.write_text(nats_config_text(plan, trust_domain()))
            supervisor_conf.write(plan, sys.executable, policy, deferred)
        except ValueError as exc:
            raise RuntimeErrorWithHint(str(exc)) from None
        supervision_log.rotate(paths, [*ALL, WATCHDOG])
        _start_supervisord(paths)
        try:
            if "nats" in components:
                _wait_healthy(plan, paths, timeout, console, [c for c in components if c not in deferred])
                _bootstrap(plan, paths, issued, console)
                client = SupervisorClient(paths.supervisor_socket)
                for name in deferred:
                    client.start(name)
            _wait_healthy(plan, paths, timeout, console)
        except KeyboardInterrupt:  # supervisord is detached: without this, Ctrl-C would leave it running
            _stop(paths)
            raise RuntimeErrorWithHint("interrupted; stopped everything") from None
    print_status(plan, paths, console)
    print_token_ports(plan, console)
    print_usage(plan, console)
    return plan


def print_token_ports(plan: Plan, console: Console) -> None:
    """One line listing the services' bearer-token ports, when the platform was started with OIDC."""
    tokens = [f"{name} {address}" for name in plan.components if (address := token_address(plan, name))]
    if tokens:
        console.print(f"bearer-token (OIDC) ports: {', '.join(tokens)}", highlight=False, soft_wrap=True)


def _credentials(paths: Paths, console: Console) -> IssuedCredentials:
    try:
        issued = ensure_credentials(paths, trust_domain())
    except OSError as exc:
        raise RuntimeErrorWithHint(f"cannot write credentials under {paths.pki_dir}: {exc.strerror or exc}") from None
    if issued.issued:
        console.print(f"issued {len(issued.issued)} certificate(s) from the development CA {issued.ca}")
    return issued


def _bootstrap(plan: Plan, paths: Paths, issued: IssuedCredentials, console: Console) -> None:
    """Creates the streams and the first role grants as service:bootstrap; stops everything if NATS refuses."""
    try:
        done = asyncio.run(bootstrap(plan.env["FRAUD_NATS_URL"], issued.services[BOOTSTRAP]))
    except BootstrapError as exc:
        _fail(paths, "nats", str(exc))
    else:
        if done.granted:
            console.print(f"granted {len(done.granted)} development role(s) (ACCESS stream)")


@contextlib.contextmanager
def _up_lock(paths: Paths) -> Iterator[None]:
    with (paths.run_dir / "up.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeErrorWithHint("another `fraudctl up` is starting in this var dir") from None
        yield


def _start_supervisord(paths: Paths) -> None:
    argv = [sys.executable, "-m", "supervisor.supervisord", "-c", str(paths.supervisor_conf)]
    # supervisord logs to its own logfile (silent=true); what it prints before that (a bad config) lands there too.
    with paths.supervisor_log.open("ab") as log:
        # A new session: supervisord outlives this command and no terminal signal reaches it.
        child = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    paths.pid_file.write_text(f"{child.pid}\n")


def _wait_healthy(
    plan: Plan, paths: Paths, timeout: float, console: Console, only: Sequence[str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    states = {name: health.DOWN for name in (plan.components if only is None else only)}
    tls = health.probe_credential(plan.var_dir)
    with console.status("starting...") as spinner:
        while True:
            for name, state in states.items():
                if state != health.SERVING:
                    states[name] = health.probe(plan.components[name], tls=tls)
            pending = [n for n, s in states.items() if s != health.SERVING]
            if not pending:
                return
            if processes.supervisord_pid(paths) is None:
                _fail(paths, "supervisord", "supervisord exited during startup")
            fatal = [info for info in process_infos(paths).values() if info.state == "FATAL"]
            if fatal:
                name = fatal[0].name
                how = supervision_log.last_exit(paths, name) or fatal[0].spawn_error
                _fail(paths, name, f"{name} exited during startup ({how}), FATAL after repeated quick exits")
            if time.monotonic() > deadline:
                name = pending[0]
                _fail(paths, name, f"{name} not healthy within {timeout:.0f} s ({states[name]})")
            spinner.update(f"waiting for {', '.join(pending)}...")
            time.sleep(0.5)


def _fail(paths: Paths, name: str, message: str) -> None:
    tail = supervision_log.component_lines(paths, name)[-15:]
    if name != "supervisord":
        tail += supervision_log.supervisor_lines(paths, name)[-5:]
    _stop(paths)
    where = paths.component_log(name)
    raise RuntimeErrorWithHint(f"{message}; stopped everything. Last lines of {where} and supervisord's log:", tail)


def _stop(paths: Paths, timeout: float = 120.0) -> int:
    """Stops supervisord and every process of ours; returns how many were found. Raises if any survive."""
    found = processes.our_processes(paths)
    pid = processes.supervisord_pid(paths)
    if pid:
        # supervisord stops its programs one by one (ingest first, NATS last: reverse priority), each with TERM
        # to its process group and KILL after its stopwaitsecs, then exits; the timeout covers the worst case.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        processes.wait_gone([pid], timeout)
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        left = processes.our_processes(paths)
        processes.signal_all(left, sig)
        processes.wait_gone(left, wait)
    left = processes.our_processes(paths)
    if left:
        raise RuntimeErrorWithHint(f"could not stop pids {left}; stop them by hand")
    _remove_run_files(paths)
    return len(set(found) | ({pid} if pid else set()))


def _remove_run_files(paths: Paths) -> None:
    for run_file in (paths.pid_file, paths.plan_file, paths.supervisor_socket):  # a killed supervisord leaves them
        run_file.unlink(missing_ok=True)


def down(var_dir: Path, console: Console | None = None) -> None:
    """Stops the runtime in ``var_dir``; no process of ours is left afterwards. Idempotent."""
    console = console or Console()
    paths = Paths(var_dir.resolve())
    if processes.supervisord_pid(paths) is None and not processes.our_processes(paths):
        _remove_run_files(paths)
        console.print("not running")
        return
    count = _stop(paths)
    console.print(f"stopped ({count} processes)")


def status(var_dir: Path, console: Console | None = None) -> int:
    """Prints a table of the components; returns 0 if all are healthy, else 1."""
    console = console or Console()
    paths = Paths(var_dir.resolve())
    plan = load_plan(paths.var_dir)
    if plan is None or processes.supervisord_pid(paths) is None:
        strays = processes.our_processes(paths)
        if strays:
            console.print(f"not running (stray pids {strays}: run `fraudctl down`)")
        elif plan is not None:  # planned, and supervisord went away without `down`
            console.print(f"not running: supervisord exited; see {paths.supervisor_log}, then `fraudctl down`")
        else:
            console.print("not running")
        return 1
    code = print_status(plan, paths, console)
    print_token_ports(plan, console)
    return code


LOG_NAMES = (*ALL, WATCHDOG, "supervisord")


def logs(var_dir: Path, component: str | None = None, follow: bool = False, lines: int = 100) -> None:
    """Prints the last ``lines`` lines of one component's log (of each, prefixed, if None); ``follow``: new ones.

    Raises:
        RuntimeErrorWithHint: If the component is unknown or there is no log yet.
    """
    paths = Paths(var_dir.resolve())
    if component is not None and component not in LOG_NAMES:
        raise RuntimeErrorWithHint(f"unknown component {component!r}; choose from {', '.join(LOG_NAMES)}")
    names = [component] if component else [n for n in LOG_NAMES if paths.component_log(n).exists()]
    if not names or not paths.component_log(names[0]).exists():
        where = paths.component_log(component) if component else paths.log_dir
        raise RuntimeErrorWithHint(f"no log at {where}; start the runtime with `fraudctl up`")
    for line in supervision_log.tail(paths, names, lines):
        print(line)
    for line in supervision_log.follow(paths, names) if follow else ():
        print(line, flush=True)
