"""supervisord's configuration for the local runtime, rendered from the plan (a pure function, unit-tested).

One ``[program:<component>]`` per component with the plan's command and environment, plus
``[program:watchdog]`` (`fraudctl.watchdog`) when NATS or Triton runs. Restart policy, as supervisord
implements it (supervisor/process.py, ``finish`` and ``transition``):

- ``autorestart=true``: a component that exits for any reason is started again.
- A component that ran at least ``startsecs`` is restarted at once (no delay), whatever ``startsecs`` is:
  a kill -9 of a running service costs only its own start-up time.
- A component that exits within ``startsecs`` of its start goes to BACKOFF and is started again after 1 s,
  then 2 s, 3 s...; after ``startretries`` such exits in a row it is FATAL and left alone (the crash-loop
  limit). ``startsecs`` is therefore the window in which a crash counts as "cannot start"; it is long
  enough (10 s) to cover a service's start-up and catch-up on this machine, so a component that dies
  in its start-up ends FATAL instead of looping.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from fraudctl.procfile import ROOT, Paths, Plan

# Start order (ascending) and stop order (descending: the watchdog first, then ingest, NATS last).
PRIORITY = {
    "nats": 10,
    "triton": 20,
    "governance": 30,
    "features": 40,
    "scoring": 50,
    "monitor": 60,
    "ingest": 70,
    "watchdog": 80,
}
# Triton's own --exit-timeout-secs is 5; services drain NATS and stop gRPC with a grace period under 5 s.
STOP_WAIT_SECS = {"triton": 15}
DEFAULT_STOP_WAIT_SECS = 10
WATCHDOG = "watchdog"
COMPONENT_LOG_MAX = "50MB"


@dataclass(frozen=True)
class RestartPolicy:
    """supervisord's start/restart knobs shared by every program.

    Attributes:
        startsecs: Seconds a start must last to count as started (shorter exits back off and count
            toward the crash-loop limit).
        startretries: Quick exits in a row tolerated before the program is FATAL.
    """

    startsecs: int = 10
    startretries: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RestartPolicy:
        """Reads ``FRAUD_SUPERVISOR_STARTSECS`` and ``FRAUD_SUPERVISOR_STARTRETRIES`` (defaults when unset).

        Raises:
            ValueError: If a value is not a non-negative integer (the message names the variable).
        """
        values = {}
        for field, var in (
            ("startsecs", "FRAUD_SUPERVISOR_STARTSECS"),
            ("startretries", "FRAUD_SUPERVISOR_STARTRETRIES"),
        ):
            raw = environ.get(var, "").strip()
            if not raw:
                continue
            if not raw.isdigit() or int(raw) > 3600:
                raise ValueError(f"{var} must be an integer in 0..3600, got {raw!r}")
            values[field] = int(raw)
        return cls(**values)


def _quote(value: str) -> str:
    # supervisord expands %(name)s in its config, in one pass for some keys and two for others (the INI
    # parser, then its own expansion), so no single escape of "%" works everywhere: refuse it. A ";" or "#"
    # after a blank would start an inline comment.
    if "%" in value or "\n" in value or any(f"{blank}{c}" in value for blank in " \t" for c in ";#"):
        raise ValueError(f"{value!r} holds '%', ' ;', ' #' or a newline, which supervisord's config cannot carry")
    return value


def _environment(env: Mapping[str, str]) -> str:
    """``KEY="value",...``: supervisord's parser (datatypes.dict_of_key_value_pairs) has no escapes."""
    for key, value in env.items():
        if not key.replace("_", "").isalnum() or any(c in value for c in "\"'\r"):
            raise ValueError(f"environment {key} cannot be written to supervisord's config (a quote in it)")
    return ",".join(f'{key}="{_quote(value)}"' for key, value in sorted(env.items()))


def _program(
    name: str, command: list[str], env: Mapping[str, str], paths: Paths, policy: RestartPolicy, autostart: bool = True
) -> str:
    lines = [
        f"[program:{name}]",
        # supervisord execs the argv itself (no shell), so the pid it reports is the component's.
        f"command={_quote(shlex.join(command))}",
        f"directory={_quote(str(ROOT))}",
        f"priority={PRIORITY[name]}",
        f"autostart={str(autostart).lower()}",
        "autorestart=true",
        f"startsecs={policy.startsecs}",
        f"startretries={policy.startretries}",
        "stopsignal=TERM",
        f"stopwaitsecs={STOP_WAIT_SECS.get(name, DEFAULT_STOP_WAIT_SECS)}",
        # Each program is its own process group: TERM/KILL reach Triton's Python-backend stubs too.
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={_quote(str(paths.component_log(name)))}",
        f"stdout_logfile_maxbytes={COMPONENT_LOG_MAX}",
        "stdout_logfile_backups=1",
    ]
    if env:
        lines.append(f"environment={_environment(env)}")
    return "\n".join(lines) + "\n"


def render(plan: Plan, python: str, policy: RestartPolicy, deferred: Collection[str] = ()) -> str:
    """Renders supervisord.conf for ``plan``.

    Args:
        plan: The plan (its var dir decides every path).
        python: Interpreter that runs the watchdog.
        policy: Restart knobs.
        deferred: Components supervisord must not start by itself (``autostart=false``): `fraudctl up`
            starts them through supervisord once NATS holds the streams and the first grants.

    Returns:
        The configuration text.

    Raises:
        ValueError: If an environment value cannot be written (a quote or a newline in it).
    """
    paths = Paths(plan.var_dir)
    sock = _quote(str(paths.supervisor_socket))
    sections = [
        f"; Written by `fraudctl up` for {_quote(str(plan.var_dir))} at each start; edits are overwritten.\n",
        # XML-RPC (status, down, the watchdog) over a unix socket only its owner can open; no TCP server.
        f"[unix_http_server]\nfile={sock}\nchmod=0700\n",
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
        f"[supervisorctl]\nserverurl=unix://{sock}\n",
        "\n".join(
            [
                "[supervisord]",
                f"logfile={_quote(str(paths.supervisor_log))}",
                # Never rotated within a run: `status` counts restarts from its "spawned:" lines.
                "logfile_maxbytes=0",
                f"pidfile={_quote(str(paths.pid_file))}",
                "nodaemon=true",  # fraudctl already detaches it (own session); its pid is the one we started.
                "silent=true",
                "minfds=1024",
                "minprocs=200",
                f"environment={_environment(plan.env)}",
            ]
        )
        + "\n",
    ]
    for comp in plan.components.values():
        sections.append(_program(comp.name, comp.command, comp.env, paths, policy, comp.name not in deferred))
    if {"nats", "triton"} & set(plan.components):
        sections.append(_program(WATCHDOG, [python, "-m", "fraudctl.watchdog"], {}, paths, policy))
    return "\n".join(sections)


def write(plan: Plan, python: str, policy: RestartPolicy, deferred: Collection[str] = ()) -> Paths:
    """Writes ``<var>/run/supervisord.conf`` for ``plan`` (see `render`) and returns the paths."""
    paths = Paths(plan.var_dir)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    paths.supervisor_conf.write_text(render(plan, python, policy, deferred))
    return paths
