"""The pure membership state machine on a fake clock: acceptance, evidence, timing, holds.

Scenarios run on :class:`tests.membership_support.Sim` (real codec, no sockets, no
sleeps).  Lanes, obituaries, the grab-all guard and key rotation are in
tests/test_membership_lanes.py.
"""

from __future__ import annotations

import pytest

from ironlb.agent.membership.core import ALIVE, DEAD, LEFT, SUSPECT, UNKNOWN, Table, TokenBucket
from ironlb.agent.membership.settings import MembershipSettings
from ironlb.agent.membership.wire import HEARTBEAT, LEAVE, MAX_ENTRIES, Message, peer_id
from ironlb.errors import ConfigError
from tests.membership_support import S, Sim

FAST = S.interval
DETECT = S.dead_after * S.interval  # 100 ms with the defaults


def test_default_settings_are_pinned() -> None:
    assert MembershipSettings() == MembershipSettings(
        interval=0.025,
        watchers=3,
        quorum=2,
        suspect_after=2,
        dead_after=4,
        port=7947,
        max_packets_per_second=200,
        leave_repeats=3,
        join_timeout=0.5,
        max_entries=100,
        isolation_min_peers=2,
        receive_buffer=4 << 20,
        max_loop_lag=2.0,
    )


@pytest.mark.parametrize(
    ("members", "lanes", "slow"),
    [(1, 0, 0.025), (3, 2, 0.025), (5, 3, 0.025), (6, 3, 2 / 60), (50, 3, 46 / 60), (101, 3, 97 / 60)],
    ids=[
        "a lone node has no lanes",
        "three nodes: every lane is fast",
        "five nodes: still every lane",
        "six nodes: the slow lanes stretch",
        "50 nodes: 3 fast lanes, 46 slow ones at 767 ms",
        "101 nodes: slow lanes at 1.6 s",
    ],
)
def test_lanes_stretch_so_a_node_never_plans_more_than_its_budget(
    members: int, lanes: int, slow: float
) -> None:
    assert S.fast_lanes(members) == lanes
    assert S.slow_period(members) == pytest.approx(slow)
    assert S.planned_rate(members) <= 0.9 * S.max_packets_per_second + 1e-9


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("interval", 0.0, "between 0.005 and 60"),
        ("dead_after", 1, "between suspect_after"),
        ("port", 70000, "1-65535"),
        ("max_entries", 500, "one datagram"),
        ("watchers", 5, "watchers / interval < 180"),
        ("quorum", 9, "between 1 and watchers + 1"),
        ("receive_buffer", 1024, "between 65536"),
    ],
    ids=[
        "a zero interval is refused",
        "dead before suspect is refused",
        "a port above 65535 is refused",
        "too many entries per datagram are refused",
        "fast lanes beyond the packet budget are refused",
        "a quorum no watcher set can reach is refused",
        "a tiny receive buffer is refused",
    ],
)
def test_bad_settings_name_the_field_value_and_what_is_allowed(field: str, value: object, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        MembershipSettings(**{field: value})  # type: ignore[arg-type]
    assert field in str(e.value) and str(value) in str(e.value) and words in str(e.value)


def test_peers_are_unknown_until_heard_then_alive_suspect_dead_by_promised_periods() -> None:
    sim = Sim(["a", "b", "c"])
    assert sim.tables["a"].peers["b"].state == UNKNOWN
    sim.run(0.05)
    assert sim.live("a") == {"a", "b", "c"}
    assert sim.tables["a"].peers["b"].promise == pytest.approx(FAST, abs=0.002)
    sim.crashed.add("b")
    heard = sim.tables["a"].peers["b"].evidence()
    assert heard is not None
    seen = []
    for step in range(1, 6):  # look just before each promised period ends
        sim.run(heard + step * FAST - 0.001 - sim.now, max_step=0.001)
        seen.append(sim.tables["a"].peers["b"].state)
    assert seen == [ALIVE, ALIVE, SUSPECT, SUSPECT, DEAD]


def test_a_crash_is_seen_by_every_survivor_within_the_detection_window() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    sim.crashed.add("c")
    crash = sim.now
    sim.until(lambda: "c" not in sim.live("a") and "c" not in sim.live("b"), max_step=0.001)
    assert sim.now - crash <= DETECT + 0.002


def test_a_message_that_does_not_echo_our_incarnation_only_asks_for_a_reply() -> None:
    sim = Sim(["a", "b"])
    b = sim.tables["b"]
    unconfirmed = b.message(HEARTBEAT, b.peers["a"], sim.now)  # b does not know a's incarnation yet
    assert not sim.tables["a"].receive(unconfirmed, sim.now)
    assert sim.live("a") == {"a"} and sim.tables["a"].counters["unconfirmed"] == 1
    assert sim.tables["a"].peers["b"].reply_due
    sim.run(0.01)  # the reply teaches b our incarnation; b answers at once
    assert sim.live("a") == sim.live("b") == {"a", "b"}


def test_a_replayed_or_reordered_message_is_ignored_and_counted() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.05)
    old = sim.send("b", "a")
    sim.deliver("b", "a", sim.send("b", "a"))
    sim.deliver("b", "a", old)
    assert sim.tables["a"].counters["replayed"] == 1


def test_a_restarted_peer_is_accepted_but_its_previous_run_is_not() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.05)
    before = sim.send("b", "a")  # captured from b's first run
    sim.restart("b", 5000)
    sim.run(0.05)
    assert sim.live("a") == {"a", "b"} and sim.tables["a"].peers["b"].incarnation == 5000
    sim.deliver("b", "a", before)
    assert sim.tables["a"].counters["stale_incarnation"] == 1


def test_a_leave_removes_the_peer_at_once_and_reports_do_not_revive_it() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    report = sim.send("b", "a")  # b still reports having heard c a moment ago
    sim.deliver("c", "a", sim.send("c", "a", LEAVE))
    sim.tables["a"].expire(sim.now)
    assert sim.live("a") == {"a", "b"} and sim.tables["a"].peers["c"].state == LEFT
    sim.deliver("b", "a", report)
    assert sim.live("a") == {"a", "b"}


def test_a_cut_link_between_two_peers_is_bridged_by_a_third_ones_reports() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    sim.cut({"a"}, {"c"})
    start = sim.now
    sim.run(2.0)
    assert not sim.lost_since("a", start) and not sim.lost_since("c", start)
    heard = sim.tables["a"].peers["c"].heard
    assert heard is not None and sim.now - heard > 1.5  # only b's reports kept c alive at a


def test_reports_carry_the_time_last_heard_so_a_crash_is_not_detected_later() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    sim.crashed.add("c")
    crash = sim.now
    sim.run(0.05)  # a and b keep exchanging reports about c
    peer = sim.tables["a"].peers["c"]
    assert peer.indirect is not None and peer.heard is not None
    assert max(peer.heard, peer.indirect) <= crash + 1e-6


@pytest.mark.parametrize(
    ("message", "counter"),
    [
        (Message(HEARTBEAT, "mallory", 1, 1, 1000), "unknown_sender"),
        (Message(HEARTBEAT, "b", 0, 1, 1000), "stale_incarnation"),
    ],
    ids=["a sender outside the peer list is ignored", "incarnation zero is never accepted"],
)
def test_messages_outside_the_rules_are_ignored_and_counted(message: Message, counter: str) -> None:
    sim = Sim(["a", "b"])
    assert not sim.tables["a"].receive(message, sim.now)
    assert sim.tables["a"].counters[counter] == 1 and sim.live("a") == {"a"}


def test_removing_a_peer_from_the_list_drops_it_from_the_live_set() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    assert sim.tables["a"].set_peers({"a": ("10.0.0.1", 7947), "b": ("10.0.0.2", 7947)}, sim.now)
    assert sim.live("a") == {"a", "b"}
    assert sim.tables["a"].peers["b"].state == ALIVE  # kept peers keep their state


def test_large_clusters_rotate_observations_through_bounded_datagrams() -> None:
    names = [f"n{i}" for i in range(150)]
    table = Table("n0", 1, S, 0.0)
    table.set_peers({n: ("10.0.0.1", 7947) for n in names}, 0.0)
    for peer in table.peers.values():
        peer.heard = 0.0
    seen: set[bytes] = set()
    for _ in range(3):
        batch = table.entries(0.01)
        assert len(batch) == S.max_entries <= MAX_ENTRIES
        seen |= {pid for pid, _ in batch}
    assert seen == {peer_id(n) for n in names[1:]}


def test_the_token_bucket_caps_the_packet_rate() -> None:
    bucket = TokenBucket(rate=200, burst=49, now=0.0)
    sent = sum(bucket.take(t / 10_000) for t in range(0, 100_000))  # 10 s of trying every 0.1 ms
    assert 200 * 10 - 1 <= sent <= 200 * 10 + 49


def test_a_heartbeat_read_late_is_dated_by_when_it_was_sent() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.1)  # a has learnt the path's base offset from several heartbeats
    queued = sim.send("b", "a")  # b's last words before it crashes ...
    sim.crashed.add("b")
    sent = sim.now
    sim.now += 0.35  # ... read 350 ms later by a CPU-starved a
    sim.deliver("b", "a", queued)
    peer = sim.tables["a"].peers["b"]
    assert peer.heard == pytest.approx(sent, abs=0.002)
    sim.until(lambda: "b" not in sim.live("a"), max_step=0.001)
    # dated by its arrival, b would live until sent + 0.35 + 0.1; the stall hold adds one period
    assert sim.now - sent <= 0.35 + FAST + 0.002


def test_a_slowly_drifting_clock_of_a_peer_is_tolerated() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.1)
    b, a = sim.tables["b"], sim.tables["a"]
    for step in range(1, 2400):  # b's clock runs 500 ppm slow for a minute
        sim.now += FAST
        a.receive(b.message(HEARTBEAT, b.peers["a"], sim.now - step * FAST * 0.0005), sim.now)
        a.expire(sim.now)
    peer = a.peers["b"]
    assert peer.heard is not None and sim.now - peer.heard < 0.01
    assert peer.state == ALIVE


def test_after_this_node_stalls_nobody_is_declared_dead_before_the_backlog_is_read() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.1)
    sim.now += 2.0  # a's thread was kept off the CPU for two seconds; b kept sending
    assert not sim.tables["a"].expire(sim.now)  # first look after the stall: hold, no verdict
    assert sim.tables["a"].peers["b"].state in (ALIVE, SUSPECT) and sim.tables["a"].counters["stalls"] == 1
    sim.deliver("b", "a", sim.send("b", "a"))  # the backlog
    sim.run(FAST / 2)
    assert "b" in sim.live("a")
    sim.crashed.add("b")  # a real crash afterwards is still detected
    sim.run(DETECT + 2 * FAST)
    assert "b" not in sim.live("a")


def test_constant_lag_on_an_overloaded_host_delays_a_verdict_by_at_most_one_period() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.1)
    sim.crashed.add("b")
    crash = sim.now
    while "b" in sim.live("a"):  # every look comes 60 ms after the previous one
        sim.now += 0.06
        sim.tables["a"].expire(sim.now)
    assert sim.tables["a"].counters["stalls"] >= 1
    assert sim.now - crash <= DETECT + FAST + 0.06
