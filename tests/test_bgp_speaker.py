"""The speaker process on loopback (no namespaces): start, acks, diffs, files, no orphans.

The session points at a closed port on 127.0.0.1, so it never establishes; everything
here is about the process and its API, which do not need a peer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.announcements import BGPRoute, BGPSession, Plan
from agent.bgp import api
from agent.bgp.settings import BGPSettings
from agent.bgp.shell import BGPShell, wanted_routes
from agent.bgp.speaker import Speaker, SpeakerError

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session(**kw: object) -> BGPSession:
    base: dict[str, object] = dict(
        name="tor",
        peer_address="127.0.0.1",
        peer_asn=64512,
        local_asn=64513,
        router_id="10.0.0.11",
        source_address="127.0.0.1",
        hold_time=3,
        peer_port=closed_port(),
        next_hops=("127.0.0.1", "::1"),
    )
    return BGPSession(**{**base, **kw})  # type: ignore[arg-type]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still alive after {timeout} s"
        time.sleep(0.02)


async def test_speaker_starts_acknowledges_and_stops(tmp_path: Path) -> None:
    sp = Speaker(session(), BGPSettings(run_dir=tmp_path), password="s3cret-pw")
    await sp.start()
    try:
        assert sp.proc is not None
        pid = sp.proc.pid
        (private,) = tmp_path.glob("ironlb-bgp-*")
        assert private.stat().st_mode & 0o777 == 0o700
        assert not (private / "exabgp.conf").exists(), "the config (with the password) is gone once parsed"
        assert b"s3cret-pw" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        routes = {f"10.9.0.{i}/32": api.Route(f"10.9.0.{i}/32", "127.0.0.1") for i in range(1, 4)}
        await sp.set_routes(routes)  # returns only once ExaBGP acked
        assert sp.counters["commands"] == 1 and sp.counters["command_errors"] == 0
        await sp.set_routes({k: v for k, v in routes.items() if k != "10.9.0.1/32"})
        assert sp.counters["prefixes_withdrawn"] == 1 and sp.counters["commands"] == 2
        await sp.set_routes({k: v for k, v in routes.items() if k != "10.9.0.1/32"})
        assert sp.counters["commands"] == 2, "an unchanged route set sends nothing"
        status = sp.status()
        assert status["state"] in ("connect", "starting") and status["prefixes"] == 2
        assert status["prefixes_sent"] == 0, "nothing is sent while the session is down"
    finally:
        await sp.stop()
    wait_gone(pid)
    assert not list(tmp_path.glob("ironlb-bgp-*")), "the private directory is removed"
    assert sp.status()["state"] == "stopped"


async def test_a_dead_speaker_is_restarted_and_keeps_its_routes(tmp_path: Path) -> None:
    sp = Speaker(session(), BGPSettings(run_dir=tmp_path))
    await sp.start()
    try:
        await sp.set_routes({"10.9.0.1/32": api.Route("10.9.0.1/32", "127.0.0.1")})
        assert sp.proc is not None
        first = sp.proc.pid
        os.killpg(first, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while sp.counters["commands"] < 2:  # the routes are announced again to the new process
            assert time.monotonic() < deadline, f"not restarted: {sp.status()}"
            await asyncio.sleep(0.05)
        assert sp.counters["starts"] == 2 and sp.proc is not None and sp.proc.pid != first
        assert sp.routes, "the speaker still holds its routes"
        assert sp.last_error, "the speaker says what went wrong"
    finally:
        await sp.stop()


async def test_a_broken_speaker_reports_why(tmp_path: Path) -> None:
    sp = Speaker(
        session(),
        BGPSettings(
            run_dir=tmp_path,
            start_timeout=5,
            command_prefix=(sys.executable, "-c", "import sys; sys.exit(3)"),
        ),
    )
    with pytest.raises(SpeakerError, match='BGPPeer "tor": ExaBGP did not start'):
        await sp.start()
    assert not list(tmp_path.glob("ironlb-bgp-*"))


def test_the_speaker_dies_with_the_agent(tmp_path: Path) -> None:
    """SIGKILL the process holding a Speaker: ExaBGP must not outlive it (PDEATHSIG)."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from agent.bgp.speaker import Speaker
        from agent.bgp.settings import BGPSettings
        from agent.announcements import BGPSession
        async def main():
            sp = Speaker(BGPSession(name="tor", peer_address="127.0.0.1", peer_asn=1, local_asn=2,
                                    router_id="10.0.0.1", peer_port={closed_port()}),
                         BGPSettings(run_dir=__import__("pathlib").Path({str(tmp_path)!r})))
            await sp.start()
            print(sp.proc.pid, flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    agent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert agent.stdout is not None
        exabgp_pid = int(agent.stdout.readline())
        assert alive(exabgp_pid)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(5)
        wait_gone(exabgp_pid)
        deadline = time.monotonic() + 5
        while list(tmp_path.glob("ironlb-bgp-*")):
            assert time.monotonic() < deadline, "the speaker removes its private directory itself"
            time.sleep(0.02)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(5)


async def test_shell_restarts_only_the_session_that_changed(tmp_path: Path) -> None:
    shell = BGPShell("n1", BGPSettings(run_dir=tmp_path, secrets_dir=tmp_path / "secrets"))
    a, b = session(name="a"), session(name="b")
    route = BGPRoute("10.9.0.1/32", ("a", "b"))
    try:
        await shell.apply(Plan(node="n1", bgp=(route,), bgp_sessions=(a, b)))
        pids = {n: s.proc.pid for n, s in shell.speakers.items() if s.proc}
        assert set(pids) == {"a", "b"}
        from dataclasses import replace

        await shell.apply(Plan(node="n1", bgp=(route,), bgp_sessions=(a, replace(b, hold_time=9))))
        assert shell.speakers["a"].proc is not None and shell.speakers["a"].proc.pid == pids["a"]
        assert shell.speakers["b"].proc is not None and shell.speakers["b"].proc.pid != pids["b"]
        assert shell.counters["session_restarts"] == 1
        await shell.apply(Plan(node="n1", bgp=(), bgp_sessions=(a,)))
        assert set(shell.speakers) == {"a"} and shell.speakers["a"].routes == {}
        wait_gone(pids["b"])
    finally:
        await shell.close()
    assert shell.speakers == {}
    wait_gone(pids["a"])


async def test_shell_reports_a_missing_password_file(tmp_path: Path) -> None:
    shell = BGPShell("n1", BGPSettings(run_dir=tmp_path, secrets_dir=tmp_path / "secrets"))
    with pytest.raises(SpeakerError, match=r'BGPPeer "tor": passwordSecretRef auth/pw: cannot read'):
        await shell.apply(Plan(node="n1", bgp_sessions=(session(password_ref=("auth", "pw")),)))
    assert shell.status()["sessions"]["tor"]["state"] == "failed"
    (tmp_path / "secrets" / "auth").mkdir(parents=True)
    (tmp_path / "secrets" / "auth" / "pw").write_text("hunter2\n")
    try:
        await shell.apply(Plan(node="n1", bgp_sessions=(session(password_ref=("auth", "pw")),)))
        assert shell.status()["sessions"]["tor"]["state"] != "failed"
        assert "hunter2" not in repr(shell.status())
    finally:
        await shell.close()


def test_routes_get_the_next_hop_of_their_family() -> None:
    s = session(next_hops=("10.0.0.11",))
    routes, skipped = wanted_routes(
        s,
        (
            BGPRoute("10.9.0.1/32", ("tor",), ("65000:1",), 100),
            BGPRoute("fd00::1/128", ("tor",)),
            BGPRoute("10.9.0.2/32", ("other",)),
        ),
    )
    assert routes == {"10.9.0.1/32": api.Route("10.9.0.1/32", "10.0.0.11", ("65000:1",), 100)}
    assert skipped == ["fd00::1/128"]


async def test_a_failed_restart_is_retried_until_it_works(tmp_path: Path) -> None:
    from dataclasses import replace

    good = BGPSettings(run_dir=tmp_path, start_timeout=10)
    sp = Speaker(session(), good)
    await sp.start()
    try:
        assert sp.proc is not None
        first = sp.proc.pid
        sp.settings = replace(good, command_prefix=(sys.executable, "-c", "import sys; sys.exit(4)"))
        os.killpg(first, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while "did not start" not in sp.last_error:
            assert time.monotonic() < deadline, f"no failed restart seen: {sp.status()}"
            await asyncio.sleep(0.05)
        assert sp.state == "restarting" and sp.proc is None
        sp.settings = good
        while sp.proc is None or sp.state == "restarting":
            assert time.monotonic() < deadline, f"never recovered: {sp.status()}"
            await asyncio.sleep(0.05)
        assert sp.proc.pid != first
    finally:
        await sp.stop()
