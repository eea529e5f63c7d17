"""The daemon: replans on every change, applies shells in order, withdraws in finally."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ironlb.agent.announcements import Plan
from ironlb.agent.daemon import Daemon
from ironlb.agent.interfaces import Board
from ironlb.agent.main import main, observe, parser, settings_from_args
from ironlb.agent.settings import Settings
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.agentconfig import AgentConfig, DaemonOptions, MembershipOptions, SourceOptions
from ironlb.config import parse
from ironlb.errors import ConfigError
from ironlb.ipam import Rejected
from ironlb.service import AssignedIP, Assignment
from lab.manifests import l2_advertisement, pool
from lab.waiting import eventually

CONFIG = parse([pool("lan", "10.0.0.0/24"), l2_advertisement("lan")])


def view(*nodes: str) -> ClusterView:
    return ClusterView(
        config=CONFIG,
        nodes={n: NodeInfo(n, addresses=(f"192.0.2.{i}",)) for i, n in enumerate(nodes, 1)},
        assignments={"ns/a": Assignment("ns/a", (AssignedIP("10.0.0.1", "lan"),))},
    )


class FakeSource:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ClusterView] = asyncio.Queue()

    async def views(self) -> AsyncIterator[ClusterView]:
        while True:
            yield await self.queue.get()

    def attach(self, board: Board) -> None:
        """Nothing to report."""


class FakeShell:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail
        self.plans: list[Plan] = []
        self.closed = 0
        self.on_change: Callable[[], None] = lambda: None

    async def apply(self, plan: Plan) -> None:
        self.log.append(f"apply {self.name}")
        self.plans.append(plan)
        if self.fail:
            raise RuntimeError("boom")

    async def close(self) -> None:
        self.log.append(f"close {self.name}")
        self.closed += 1

    def status(self) -> Mapping[str, Any]:
        return {"plans": len(self.plans)}


class FakeMembership:
    def __init__(self) -> None:
        self.alive = frozenset({"n1", "n2"})
        self.peers: dict[str, str] = {}
        self.events: asyncio.Queue[frozenset[str]] = asyncio.Queue()
        self.stopped: list[bool] = []

    def update_peers(self, peers: Mapping[str, str], ready: Collection[str] | None = None) -> None:
        self.peers = dict(peers)

    async def start(self) -> None: ...

    async def stop(self, graceful: bool) -> None:
        self.stopped.append(graceful)

    def live(self) -> frozenset[str]:
        return self.alive

    def status(self) -> Mapping[str, Any]:
        return {"live": sorted(self.alive)}

    async def changes(self) -> AsyncIterator[frozenset[str]]:
        while True:
            yield await self.events.get()


def settings(tmp_path: Path, **daemon: Any) -> Settings:
    config = AgentConfig(
        source=SourceOptions(directory=tmp_path),
        membership=MembershipOptions(mode="static"),
        daemon=DaemonOptions(status_file=tmp_path / "status.json", **daemon),
    )
    return Settings(node="n1", config=config)


async def test_replans_on_views_and_membership_changes_then_withdraws_on_cancel(tmp_path: Path) -> None:
    log: list[str] = []
    first, second = FakeShell(log, "l2"), FakeShell(log, "bgp")
    source, member = FakeSource(), FakeMembership()
    daemon = Daemon(settings(tmp_path), source, [first, second], member)
    task = asyncio.create_task(daemon.run())
    await source.queue.put(view("n1", "n2"))
    await eventually("the second shell's first plan", lambda: second.plans, lambda plans: len(plans) == 1)
    assert log[:2] == ["apply l2", "apply bgp"], "shells are applied in order"
    assert member.peers == {"n2": "192.0.2.2"}, "membership learns the other nodes' addresses"
    member.alive = frozenset({"n1"})
    await member.events.put(member.alive)
    await eventually("a replan on the membership change", lambda: first.plans, lambda plans: len(plans) == 2)
    owners = {o.ip: o.nodes for o in first.plans[-1].ownership}
    assert owners == {"10.0.0.1": ("n1",)}, "a dead member never owns"
    assert (tmp_path / "status.json").exists()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (first.closed, second.closed) == (1, 1)
    assert member.stopped == [True], "membership leaves gracefully"


async def test_refused_addresses_reach_the_status_file_and_metrics_and_never_a_shell(tmp_path: Path) -> None:
    shell, source = FakeShell([], "l2"), FakeSource()
    daemon = Daemon(settings(tmp_path), source, [shell])
    board = observe(daemon)  # what agent.main wires
    refused = (Rejected("10.77.0.99", "NoPool", "is in no IPPool"),)
    task = asyncio.create_task(daemon.run())
    try:
        await source.queue.put(replace(view("n1"), rejected={"ns/evil": refused}))
        await eventually(
            "a plan and the status file", lambda: bool(shell.plans) and (tmp_path / "status.json").exists()
        )
        await eventually(
            "the refusal in the status file",
            lambda: json.loads((tmp_path / "status.json").read_text())["rejected"],
            lambda rejected: "ns/evil" in rejected,
        )
        status = json.loads((tmp_path / "status.json").read_text())
        assert status["rejected"] == {
            "ns/evil": [{"ip": "10.77.0.99", "reason": "NoPool", "message": "is in no IPPool"}]
        }
        assert board.metrics.registry.get_sample_value("ironlb_rejected_addresses", {"reason": "NoPool"}) == 1
        assert all(a.ip != "10.77.0.99" for p in shell.plans for a in p.l2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_failing_shell_does_not_stop_the_others(tmp_path: Path) -> None:
    log: list[str] = []
    bad, good = FakeShell(log, "bad", fail=True), FakeShell(log, "good")
    source = FakeSource()
    daemon = Daemon(settings(tmp_path), source, [bad, good])
    task = asyncio.create_task(daemon.run())
    await source.queue.put(view("n1"))
    await eventually("the good shell's plan", lambda: good.plans, lambda plans: len(plans) == 1)
    assert daemon.plan is not None and daemon.plan.l2[0].ip == "10.0.0.1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bad.closed == good.closed == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(
            ["--source", "files", "--node", "n1", "--membership", "static"],
            "source.directory",
            id="files without --dir",
        ),
        pytest.param(["--dir", "/tmp", "--membership", "static"], "node", id="no node name"),
        pytest.param(["--dir", "/tmp", "--node", "n1"], "membership.keyFile", id="gossip without a key"),
        pytest.param(
            ["--dir", "/tmp", "--node", "n1", "--membership", "static", "--metrics-port", "70000"],
            'metrics.port "70000": must be 0-65535',
            id="a port out of range",
        ),
    ],
)
def test_bad_flags_name_the_setting(argv: list[str], fragment: str) -> None:
    args = parser().parse_args(argv)
    with pytest.raises(ConfigError) as info:
        settings_from_args(args, env={})
    assert fragment in str(info.value)


def test_invalid_configuration_exits_2_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", "/tmp", "--membership", "static"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "Traceback" not in err


def test_help_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironlb.agent.main", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "--membership-key" in proc.stdout


# --- health that means health ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class BlockingShell(FakeShell):
    """A shell whose apply never returns (a hung netlink call, a wedged speaker)."""

    async def apply(self, plan: Plan) -> None:
        self.plans.append(plan)
        await asyncio.Event().wait()


async def test_an_idle_agent_stays_live_long_after_its_last_replan(tmp_path: Path) -> None:
    clock = Clock()
    shell, source = FakeShell([], "l2"), FakeSource()
    daemon = Daemon(settings(tmp_path), source, [shell])
    board = observe(daemon)
    board.clock = clock
    task = asyncio.create_task(daemon.run())
    try:
        assert board.readiness()[0] is False, "not ready before the first view"
        await source.queue.put(view("n1"))
        await eventually("readiness", board.readiness, lambda ready: ready[0])
        replans = daemon.replans
        clock.t += 3600  # an hour without a single change
        await eventually(
            "liveness", board.live, lambda live: live[0], timeout=3
        )  # the heartbeat ticks by itself
        assert daemon.replans == replans, "no replan was needed to stay live"
        assert board.readiness() == (True, "ok")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_stalled_loop_a_stuck_replan_and_a_broken_shell_fail_liveness(tmp_path: Path) -> None:
    clock = Clock()
    shell, source = BlockingShell([], "l2"), FakeSource()
    daemon = Daemon(settings(tmp_path, stuck_after=30), source, [shell], clock=clock)
    board = observe(daemon)
    board.clock = clock
    task = asyncio.create_task(daemon.run())
    try:
        await source.queue.put(view("n1"))
        await eventually("the blocking shell's plan", lambda: shell.plans)
        board.tick()
        assert board.live() == (True, "ok")
        clock.t += 31
        board.tick()
        ok, why = board.live()
        assert not ok and "replan has been running" in why
        clock.t += 3600  # and now the loop itself stops ticking
        ok, why = board.live()
        assert not ok and "event loop stalled" in why
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    broken = FakeShell([], "bgp")
    broken.status = lambda: {"healthy": False, "problem": "speaker process exited"}  # type: ignore[method-assign]
    board.shells = {"BGPShell": broken}
    board.tick()
    assert board.live() == (False, "BGPShell: speaker process exited")
