"""The watchdog's decisions (a fake probe and a fake supervisord) and restarts counted from supervisord's log."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudctl import supervision_log
from fraudctl.procfile import Paths
from fraudctl.supervisor_rpc import ProcessInfo
from fraudctl.watchdog import Verdict, Watchdog, WatchdogConfig

CONFIG = WatchdogConfig(interval_s=1.0, failures=3, ready_failures=5, timeout_s=1.0, grace_s=30.0)


class FakeSupervisor:
    """One process per program, whose pid changes when the watchdog restarts it."""

    def __init__(self, **uptimes: float) -> None:
        self.pids = {name: 100 + i for i, name in enumerate(uptimes)}
        self.uptimes = dict(uptimes)
        self.states = dict.fromkeys(uptimes, "RUNNING")
        self.restarted: list[str] = []

    def processes(self) -> dict[str, ProcessInfo]:
        return {
            name: ProcessInfo(name, self.states[name], pid, 1000.0, 1000.0 + self.uptimes[name], 0, "")
            for name, pid in self.pids.items()
        }

    def restart(self, name: str) -> None:
        self.restarted.append(name)
        self.pids[name] += 1000
        self.uptimes[name] = 0.0


class FakeProbe:
    def __init__(self) -> None:
        self.failing: set[str] = set()  # live does not answer
        self.unready: set[str] = set()  # live answers, ready does not

    def __call__(self, name: str) -> Verdict:
        if name in self.failing:
            return Verdict(live=False, reason="/v2/health/live: NOT_SERVING (timed out)")
        if name in self.unready:
            return Verdict(live=True, ready=False, reason="/v2/health/ready: NOT_SERVING (HTTP 400)")
        return Verdict(live=True)


def test_a_hung_component_is_restarted_after_the_configured_failures_in_a_row_and_only_then() -> None:
    supervisor, probe = FakeSupervisor(triton=100.0, nats=100.0), FakeProbe()
    dog = Watchdog(["nats", "triton"], probe, supervisor, CONFIG)
    assert dog.check() == []  # both answer
    probe.failing = {"triton"}
    assert dog.check() == [] and dog.check() == []
    assert dog.check() == ["triton"]
    assert supervisor.restarted == ["triton"]


def test_one_good_answer_resets_the_count() -> None:
    supervisor, probe = FakeSupervisor(triton=100.0), FakeProbe()
    dog = Watchdog(["triton"], probe, supervisor, CONFIG)
    for failing in ({"triton"}, {"triton"}, set(), {"triton"}, {"triton"}):
        probe.failing = failing
        assert dog.check() == []
    assert supervisor.restarted == []


def test_a_component_starting_up_is_not_judged_until_it_answers_or_its_grace_is_over() -> None:
    supervisor, probe = FakeSupervisor(triton=5.0), FakeProbe()
    probe.failing = {"triton"}
    dog = Watchdog(["triton"], probe, supervisor, CONFIG)
    for _ in range(5):
        assert dog.check() == []  # young and never answered: slow start-up, not a hang
    supervisor.uptimes["triton"] = CONFIG.grace_s + 1  # a start-up that hangs for ever is a hang
    assert [dog.check() for _ in range(3)] == [[], [], ["triton"]]


def test_not_ready_while_live_is_tolerated_far_longer_than_a_dead_live() -> None:
    supervisor, probe = FakeSupervisor(triton=100.0), FakeProbe()
    dog = Watchdog(["triton"], probe, supervisor, CONFIG)
    probe.unready = {"triton"}  # e.g. a model loading: strict readiness says no for a few seconds
    assert [dog.check() for _ in range(4)] == [[]] * 4
    probe.unready = set()
    assert [dog.check() for _ in range(10)] == [[]] * 10
    probe.unready = {"triton"}  # a lost backend: ready never comes back
    assert [dog.check() for _ in range(5)] == [[]] * 4 + [["triton"]]


def test_once_it_has_answered_a_young_component_is_judged_at_once() -> None:
    supervisor, probe = FakeSupervisor(triton=2.0), FakeProbe()
    dog = Watchdog(["triton"], probe, supervisor, CONFIG)
    dog.check()
    probe.failing = {"triton"}
    assert [dog.check() for _ in range(3)] == [[], [], ["triton"]]


def test_a_new_process_and_a_program_supervisord_is_restarting_start_afresh() -> None:
    supervisor, probe = FakeSupervisor(triton=100.0), FakeProbe()
    probe.failing = {"triton"}
    dog = Watchdog(["triton"], probe, supervisor, CONFIG)
    dog.check()
    dog.check()
    supervisor.pids["triton"] += 1  # it crashed and supervisord restarted it: its count starts over
    supervisor.uptimes["triton"] = 100.0
    assert [dog.check() for _ in range(2)] == [[], []]
    supervisor.states["triton"] = "BACKOFF"  # not running: supervisord's own policy is in charge
    assert [dog.check() for _ in range(5)] == [[]] * 5
    assert supervisor.restarted == []


def test_watchdog_settings_come_from_the_environment_and_name_a_bad_variable() -> None:
    assert WatchdogConfig.from_env({}) == WatchdogConfig()
    assert WatchdogConfig.from_env({"FRAUD_WATCHDOG_FAILURES": "5"}).failures == 5
    assert WatchdogConfig.from_env({"FRAUD_WATCHDOG_READY_FAILURES": "7"}).ready_failures == 7
    with pytest.raises(ValueError, match="FRAUD_WATCHDOG_INTERVAL_S"):
        WatchdogConfig.from_env({"FRAUD_WATCHDOG_INTERVAL_S": "soon"})


def test_restarts_are_spawns_beyond_the_first_in_supervisords_log(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    paths.log_dir.mkdir()
    paths.supervisor_log.write_text(
        "2026-01-05 10:00:00,001 INFO spawned: 'nats' with pid 10\n"
        "2026-01-05 10:00:00,002 INFO spawned: 'triton' with pid 11\n"
        "2026-01-05 10:00:09,000 WARN exited: triton (terminated by SIGKILL; not expected)\n"
        "2026-01-05 10:00:09,100 INFO spawned: 'triton' with pid 12\n"
        "2026-01-05 10:00:20,000 WARN exited: triton (exit status 1; not expected)\n"
        "2026-01-05 10:00:20,100 INFO spawned: 'triton' with pid 13\n"
    )
    assert supervision_log.restarts(paths) == {"nats": 0, "triton": 2}
    assert supervision_log.last_exit(paths, "triton") == "exit status 1; not expected"
    assert supervision_log.last_exit(paths, "nats") is None
