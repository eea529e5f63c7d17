"""The BIRD process and the BGP shell on this host (no namespaces, no peer): lifecycle and files.

Sessions point at a closed port on 127.0.0.1, so they never establish; everything here is
about the process, its files and its configuration, which need no peer.  Every test gets a
private run directory and, after it, checks that no BIRD started from it is still running
and removes the directory: the suite leaves no process and no temporary directory behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironlb.agent.announcements import BGPRoute, BGPSession, Plan
from ironlb.agent.bgp import birdconf
from ironlb.agent.bgp.birdconf import Peering
from ironlb.agent.bgp.settings import BGPSettings
from ironlb.agent.bgp.shell import BGPShell, wanted_routes
from ironlb.agent.bgp.speaker import Speaker, SpeakerError
from lab.waiting import eventually, wait_for
from tests.factories import bgp_session

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 is not installed (scripts/setup)"),
]

PASSWORD = "s3cret-pw-never-shown"


def processes_using(path: Path) -> list[int]:
    """PIDs whose command line mentions ``path`` (a BIRD started from that run directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(path).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ironlb-test-bgp-"))
    try:
        yield path
        wait_for(
            f"no process left running from {path}",
            lambda: processes_using(path),
            lambda pids: not pids,
            timeout=5,
        )
    finally:
        for pid in processes_using(path):  # only what this test started, by PID
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def session(**kw: Any) -> BGPSession:
    """A session to a peer on loopback that never answers (port 1), with short timers."""
    loopback = {"peer_address": "127.0.0.1", "source_address": "127.0.0.1", "peer_port": 1}
    timers = {"hold_time": 3, "keepalive_time": 1}
    return bgp_session(**{**loopback, **timers, "next_hops": ("127.0.0.1", "::1"), **kw})


def settings(run_dir: Path, **kw: object) -> BGPSettings:
    return dataclasses.replace(BGPSettings(run_dir=run_dir, listen_port=17900 + os.getpid() % 97), **kw)  # type: ignore[arg-type]


def config(run_dir: Path, *peerings: Peering) -> str:
    return birdconf.render(
        "n1", list(peerings) or [Peering(session())], listen_port=settings(run_dir).listen_port
    )


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_bird_starts_on_the_config_and_stops_leaving_nothing(run_dir: Path) -> None:
    sp = Speaker(settings(run_dir))
    await sp.start(config(run_dir, Peering(session(), {}, password=PASSWORD)))
    try:
        assert sp.proc is not None and sp.running
        pid = sp.proc.pid
        private = run_dir / "bgp"
        assert private.stat().st_mode & 0o777 == 0o700
        assert sorted(p.name for p in private.iterdir()) == ["bird.ctl", "lock"], (
            "the config is gone once parsed"
        )
        assert PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert PASSWORD.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        assert os.getpgid(pid) == pid, "BIRD runs in its own process group"
        await sp.refresh()
        assert birdconf.protocol_name("tor") in sp.protocols
    finally:
        await sp.stop()
    assert not alive(pid) and not (run_dir / "bgp").exists()
    assert sp.status()["state"] == "stopped"


async def test_a_second_agent_on_the_same_run_dir_is_refused(run_dir: Path) -> None:
    first, second = Speaker(settings(run_dir)), Speaker(settings(run_dir))
    await first.start(config(run_dir))
    try:
        with pytest.raises(SpeakerError, match="is in use by another agent"):
            await second.start(config(run_dir))
        assert first.running and (run_dir / "bgp" / "bird.ctl").exists(), "the first one is untouched"
    finally:
        await first.stop()


async def test_a_rejected_configuration_leaves_the_running_one(run_dir: Path) -> None:
    sp = Speaker(settings(run_dir))
    await sp.start(config(run_dir))
    try:
        with pytest.raises(SpeakerError, match="BIRD rejected the configuration"):
            await sp.configure(config(run_dir) + "protocol nonsense {\n")
        await sp.refresh()
        assert birdconf.protocol_name("tor") in sp.protocols and sp.counters["reconfigure_errors"] == 1
        await sp.configure(config(run_dir, Peering(session(name="b"))))
        await sp.refresh()
        assert (
            birdconf.protocol_name("b") in sp.protocols and birdconf.protocol_name("tor") not in sp.protocols
        )
    finally:
        await sp.stop()


async def test_a_dead_bird_is_restarted_on_the_latest_configuration(run_dir: Path) -> None:
    sp = Speaker(settings(run_dir))
    await sp.start(config(run_dir))
    try:
        await sp.configure(config(run_dir, Peering(session(name="latest"))))
        assert sp.proc is not None
        first = sp.proc.pid
        os.killpg(first, signal.SIGKILL)
        await eventually(
            "BIRD restarted (the speaker's status)",
            sp.status,
            lambda _: sp.running and sp.counters["starts"] == 2 and sp.ctl is not None,
            timeout=15,
        )
        assert sp.proc.pid != first and "BIRD exited" in sp.last_error
        await sp.refresh()
        assert birdconf.protocol_name("latest") in sp.protocols
    finally:
        await sp.stop()


async def test_a_missing_bird_is_reported(run_dir: Path) -> None:
    sp = Speaker(settings(run_dir, bird="/nonexistent/bird"))
    with pytest.raises(SpeakerError, match="cannot run /nonexistent/bird"):
        await sp.start(config(run_dir))
    assert sp.state == "stopped" and not (run_dir / "bgp").exists()


def test_bird_dies_with_the_agent_and_the_next_agent_cleans_up(run_dir: Path) -> None:
    """SIGKILL the process holding a Speaker: BIRD must not outlive it (parent-death signal)."""
    script = textwrap.dedent(f"""
        import asyncio, pathlib
        from ironlb.agent.bgp.speaker import Speaker
        from ironlb.agent.bgp.settings import BGPSettings
        from ironlb.agent.bgp import birdconf
        from ironlb.agent.announcements import BGPSession
        async def main():
            port = {settings(run_dir).listen_port}
            s = BGPSettings(run_dir=pathlib.Path({str(run_dir)!r}), listen_port=port)
            sp = Speaker(s)
            sess = BGPSession(name="tor", peer_address="127.0.0.1", peer_asn=1, local_asn=2,
                              router_id="10.0.0.1", peer_port=1, next_hops=("127.0.0.1",))
            await sp.start(birdconf.render("n1", [birdconf.Peering(sess)], listen_port=s.listen_port))
            print(sp.proc.pid, flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    agent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert agent.stdout is not None
        bird_pid = int(agent.stdout.readline())
        assert alive(bird_pid)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(5)
        wait_for(
            "BIRD to die with the agent", lambda: alive(bird_pid), lambda up: not up, timeout=5, interval=0.02
        )
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(5)
    assert (run_dir / "bgp" / "bird.ctl").exists(), (
        "a killed agent leaves its socket (in its memory-backed runDir)"
    )

    async def next_agent() -> None:
        sp = Speaker(settings(run_dir))
        await sp.start(config(run_dir))
        assert sorted(p.name for p in (run_dir / "bgp").iterdir()) == ["bird.ctl", "lock"]
        await sp.stop()

    asyncio.run(next_agent())


# --- the shell -------------------------------------------------------------------------------


async def test_the_shell_reloads_only_on_change_and_counts_session_restarts(run_dir: Path) -> None:
    shell = BGPShell("n1", settings(run_dir, secrets_dir=run_dir / "secrets"))
    a, b = session(name="a"), session(name="b")
    route = BGPRoute("10.9.0.1/32", ("a", "b"))
    try:
        await shell.apply(Plan(node="n1", bgp=(route,), bgp_sessions=(a, b)))
        pid = shell.speaker.proc.pid if shell.speaker.proc else None
        await shell.apply(Plan(node="n1", bgp=(route,), bgp_sessions=(a, b)))
        assert shell.speaker.counters["reconfigures"] == 0, "an unchanged plan sends BIRD nothing"
        await shell.apply(
            Plan(node="n1", bgp=(route,), bgp_sessions=(a, dataclasses.replace(b, hold_time=9)))
        )
        assert shell.speaker.counters["reconfigures"] == 1 and shell.counters["session_restarts"] == 1
        await shell.apply(Plan(node="n1", bgp=(), bgp_sessions=(a,)))
        assert set(shell.sessions) == {"a"} and shell.routes == {"a": {}}
        assert shell.speaker.proc is not None and shell.speaker.proc.pid == pid, "one BIRD throughout"
        await shell.apply(Plan(node="n1"))
        assert shell.speaker.state == "stopped", "no session left: BIRD is stopped"
        assert shell.status()["sessions"] == {}
    finally:
        await shell.close()


async def test_the_shell_reports_a_missing_or_bad_password_and_keeps_a_known_one(run_dir: Path) -> None:
    shell = BGPShell("n1", settings(run_dir, secrets_dir=run_dir / "secrets"))
    s = session(password_ref=("auth", "pw"))
    try:
        with pytest.raises(SpeakerError, match=r'BGPPeer "tor": passwordSecretRef auth/pw: cannot read'):
            await shell.apply(Plan(node="n1", bgp_sessions=(s,)))
        assert shell.status()["sessions"]["tor"]["state"] == "failed"
        (run_dir / "secrets" / "auth").mkdir(parents=True)
        (run_dir / "secrets" / "auth" / "pw").write_text(PASSWORD + "\n")
        await shell.apply(Plan(node="n1", bgp_sessions=(s,)))
        assert shell.status()["sessions"]["tor"]["state"] != "failed"
        (run_dir / "secrets" / "auth" / "pw").write_text('x"bad-pw-never-shown')
        with pytest.raises(SpeakerError, match="may not contain double quotes"):
            await shell.apply(Plan(node="n1", bgp_sessions=(s,)))
        assert "tor" in shell.sessions, "the session keeps the password it had"
        assert PASSWORD not in repr(shell.status()) and "bad-pw-never-shown" not in repr(shell.status())
    finally:
        await shell.close()


async def test_the_shell_writes_nowhere_but_its_run_dir(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No temporary directories (the ExaBGP speaker left one per session): only <runDir>/bgp, removed."""
    scratch = run_dir / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    shell = BGPShell("n1", settings(run_dir))
    await shell.apply(Plan(node="n1", bgp=(BGPRoute("10.9.0.1/32", ("tor",)),), bgp_sessions=(session(),)))
    await shell.apply(Plan(node="n1", bgp_sessions=(session(hold_time=9),)))
    await shell.close()
    assert list(scratch.iterdir()) == [], "nothing in the temporary directory"
    assert [p.name for p in run_dir.iterdir()] == ["tmp"], "and <runDir>/bgp is gone"


def test_routes_get_only_the_families_the_session_has_a_next_hop_for() -> None:
    s = session(next_hops=("10.0.0.11",))
    mine = BGPRoute("10.9.0.1/32", ("tor", "other"), ("65000:1",), 100)
    routes, skipped = wanted_routes(
        s, (mine, BGPRoute("fd00::1/128", ("tor",)), BGPRoute("10.9.0.2/32", ("other",)))
    )
    assert routes == {"10.9.0.1/32": mine}
    assert skipped == ["fd00::1/128"]


def test_settings_defaults_are_pinned() -> None:
    s = BGPSettings()
    assert (
        str(s.run_dir),
        str(s.secrets_dir),
        s.start_timeout,
        s.stop_timeout,
        s.bird,
        s.listen_port,
        s.poll_interval,
    ) == ("/run/ironlb", "/etc/ironlb/secrets", 30.0, 3.0, "bird", 1790, 1.0)
