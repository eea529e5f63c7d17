"""The daemon: replans on every change, applies shells in order, withdraws in finally."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from agent.announcements import Plan
from agent.daemon import Daemon
from agent.main import main, parser, settings_from_args
from agent.settings import DaemonSettings, L2Settings, MembershipOptions, Settings, SourceSettings
from agent.view import ClusterView, NodeInfo
from ironlb.config import parse
from ironlb.errors import ConfigError
from ironlb.service import AssignedIP, Assignment

CONFIG = parse(
    [
        {
            "apiVersion": "ironlb.io/v1alpha1",
            "kind": "IPPool",
            "metadata": {"name": "lan"},
            "spec": {"addresses": ["10.0.0.0/24"]},
        },
        {
            "apiVersion": "ironlb.io/v1alpha1",
            "kind": "L2Advertisement",
            "metadata": {"name": "lan"},
            "spec": {},
        },
    ]
)


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


class FakeShell:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail
        self.plans: list[Plan] = []
        self.closed = 0

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

    def update_peers(self, peers: Mapping[str, str]) -> None:
        self.peers = dict(peers)

    async def start(self) -> None: ...

    async def stop(self, graceful: bool) -> None:
        self.stopped.append(graceful)

    def live(self) -> frozenset[str]:
        return self.alive

    async def changes(self) -> AsyncIterator[frozenset[str]]:
        while True:
            yield await self.events.get()


def settings(tmp_path: Path) -> Settings:
    return Settings(
        node="n1",
        source=SourceSettings(directory=tmp_path),
        membership=MembershipOptions(mode="static"),
        daemon=DaemonSettings(status_file=tmp_path / "status.json"),
    )


async def wait_until(cond: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def test_replans_on_views_and_membership_changes_then_withdraws_on_cancel(tmp_path: Path) -> None:
    log: list[str] = []
    first, second = FakeShell(log, "l2"), FakeShell(log, "bgp")
    source, member = FakeSource(), FakeMembership()
    daemon = Daemon(settings(tmp_path), source, [first, second], member)  # type: ignore[arg-type]
    task = asyncio.create_task(daemon.run())
    await source.queue.put(view("n1", "n2"))
    await wait_until(lambda: len(second.plans) == 1)
    assert log[:2] == ["apply l2", "apply bgp"], "shells are applied in order"
    assert member.peers == {"n2": "192.0.2.2"}, "membership learns the other nodes' addresses"
    member.alive = frozenset({"n1"})
    await member.events.put(member.alive)
    await wait_until(lambda: len(first.plans) == 2)
    owners = {o.ip: o.nodes for o in first.plans[-1].ownership}
    assert owners == {"10.0.0.1": ("n1",)}, "a dead member never owns"
    assert (tmp_path / "status.json").exists()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (first.closed, second.closed) == (1, 1)
    assert member.stopped == [True], "membership leaves gracefully"


async def test_a_failing_shell_does_not_stop_the_others(tmp_path: Path) -> None:
    log: list[str] = []
    bad, good = FakeShell(log, "bad", fail=True), FakeShell(log, "good")
    source = FakeSource()
    daemon = Daemon(settings(tmp_path), source, [bad, good])  # type: ignore[list-item]
    task = asyncio.create_task(daemon.run())
    await source.queue.put(view("n1"))
    await wait_until(lambda: len(good.plans) == 1)
    assert daemon.plan is not None and daemon.plan.l2[0].ip == "10.0.0.1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bad.closed == good.closed == 1


def test_settings_defaults_are_pinned() -> None:
    s = Settings(
        node="n1", source=SourceSettings(directory=Path("/d")), membership=MembershipOptions(mode="static")
    )
    assert s.source == SourceSettings(kind="files", directory=Path("/d"), poll_interval=0.2)
    assert s.l2 == L2Settings(
        interfaces=(),
        garp_schedule=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        probe=True,
        probe_count=2,
        probe_interval=0.05,
        probe_wait=0.2,
        conflict_retry=30.0,
    )
    assert s.daemon == DaemonSettings(settle=0.0, close_timeout=5.0, status_file=None)
    assert MembershipOptions() == MembershipOptions(
        mode="gossip", key_file=None, port=7947, interval=0.1, dead_after=4
    )
    for group in (SourceSettings, L2Settings, DaemonSettings, MembershipOptions, Settings):
        assert all(f.name for f in fields(group))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        pytest.param(
            ["--source", "files", "--node", "n1", "--membership", "static"],
            "source.directory",
            id="files without --dir",
        ),
        pytest.param(["--dir", "/tmp", "--membership", "static"], "node", id="no node name"),
        pytest.param(["--dir", "/tmp", "--node", "n1"], "membership.key_file", id="gossip without a key"),
    ],
)
def test_bad_flags_name_the_setting(argv: list[str], fragment: str) -> None:
    args = parser().parse_args(argv)
    with pytest.raises(ConfigError, match=fragment):
        settings_from_args(args)


def test_invalid_configuration_exits_2_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dir", "/tmp", "--membership", "static"]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "Traceback" not in err


def test_help_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent.main", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "--membership-key" in proc.stdout
