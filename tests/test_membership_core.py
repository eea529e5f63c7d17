"""The pure membership state machine, driven by a fake clock (no sockets, no sleeps).

A tiny simulated network (:class:`Sim`) moves signed datagrams between
:class:`~agent.membership.core.Table` objects through the real wire codec, with links that
can be cut, so crash, LEAVE, replay and partition scenarios read like the spec.
"""

from __future__ import annotations

import pytest

from agent.membership.core import ALIVE, DEAD, LEFT, SUSPECT, UNKNOWN, Table, TokenBucket
from agent.membership.settings import MembershipSettings
from agent.membership.wire import HEARTBEAT, LEAVE, MAX_ENTRIES, Message, decode, encode, peer_id

KEY = b"k" * 32
S = MembershipSettings()  # period 0.1 s, suspect after 2, dead after 4 periods


class Sim:
    """Tables for ``names`` with a fake clock and a set of cut (directed) links."""

    def __init__(self, names: list[str], settings: MembershipSettings = S) -> None:
        self.now = 100.0
        self.tables = {n: Table(n, 1000 + i, settings, self.now) for i, n in enumerate(names)}
        self.down: set[tuple[str, str]] = set()
        self.crashed: set[str] = set()
        peers = {n: (f"10.0.0.{i + 1}", 7947) for i, n in enumerate(names)}
        for t in self.tables.values():
            t.set_peers(peers, self.now)

    def send(self, src: str, dst: str, kind: int = HEARTBEAT) -> bytes:
        table = self.tables[src]
        entries = table.entries(self.now) if kind == HEARTBEAT else ()
        return encode(table.message(kind, table.peers[dst], self.now, entries), KEY)

    def deliver(self, dst: str, data: bytes) -> tuple[bool, bool]:
        return self.tables[dst].receive(decode(data, KEY), self.now)

    def round(self) -> None:
        """Everyone alive sends one heartbeat to everyone (twice, so echoes settle)."""
        for _ in range(2):
            for src in self.tables:
                for dst in self.tables:
                    up = src != dst and not {src, dst} & self.crashed and (src, dst) not in self.down
                    if up:
                        self.deliver(dst, self.send(src, dst))

    def run(self, seconds: float) -> None:
        """Advance time in heartbeat periods, exchanging heartbeats each period."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += S.interval
            self.round()
            for t in self.tables.values():
                t.expire(self.now)

    def live(self, node: str) -> set[str]:
        self.tables[node].expire(self.now)
        return set(self.tables[node].live())

    def cut(self, a: set[str], b: set[str]) -> None:
        self.down |= {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}


def test_default_settings_are_pinned() -> None:
    assert MembershipSettings() == MembershipSettings(
        interval=0.1, suspect_after=2, dead_after=4, port=7947, max_packets_per_second=200,
        leave_repeats=3, join_timeout=0.5, max_entries=100,
    )


@pytest.mark.parametrize(
    ("members", "period"),
    [(1, 0.1), (3, 0.1), (21, 0.1), (50, 49 / 200), (101, 0.5)],
    ids=["a lone node uses the floor", "three nodes use the floor", "21 nodes still fit the budget",
         "50 nodes stretch the period", "101 nodes stretch it to half a second"],
)
def test_period_grows_so_a_node_never_exceeds_its_packet_budget(members: int, period: float) -> None:
    assert S.period(members) == pytest.approx(period)
    assert (members - 1) / S.period(members) <= S.max_packets_per_second + 1e-9


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("interval", 0.0, "between 0.01 and 60"), ("dead_after", 1, "between suspect_after"),
     ("port", 70000, "1-65535"), ("max_entries", 500, "one datagram")],
    ids=["a zero interval is refused", "dead before suspect is refused", "a port above 65535 is refused",
         "too many entries per datagram are refused"],
)
def test_bad_settings_name_the_field_value_and_what_is_allowed(field: str, value: object, words: str) -> None:
    from ironlb.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        MembershipSettings(**{field: value})  # type: ignore[arg-type]
    assert field in str(e.value) and str(value) in str(e.value) and words in str(e.value)


def test_peers_are_unknown_until_heard_then_alive_suspect_dead_by_periods() -> None:
    sim = Sim(["a", "b"])
    assert sim.live("a") == {"a"} and sim.tables["a"].peers["b"].state == UNKNOWN
    sim.run(0.1)
    assert sim.live("a") == {"a", "b"}
    sim.crashed.add("b")
    heard = sim.tables["a"].peers["b"].heard
    assert heard is not None
    seen = []
    for step in range(1, 6):
        sim.now = heard + step * 0.1 - 0.001
        sim.tables["a"].expire(sim.now)
        seen.append(sim.tables["a"].peers["b"].state)
    assert seen == [ALIVE, ALIVE, SUSPECT, SUSPECT, DEAD]
    assert sim.live("a") == {"a"}


def test_a_message_that_does_not_echo_our_incarnation_only_asks_for_a_reply() -> None:
    sim = Sim(["a", "b"])
    changed, reply = sim.deliver("a", sim.send("b", "a"))  # b does not know a's incarnation yet
    assert (changed, reply) == (False, True)
    assert sim.live("a") == {"a"} and sim.tables["a"].counters["unconfirmed"] == 1
    assert sim.deliver("a", sim.send("b", "a")) == (False, False)  # rate-limited: no second reply
    changed, reply = sim.deliver("b", sim.send("a", "b"))  # the reply: b now confirms a ...
    assert changed and reply  # ... and answers at once so a confirms b too
    assert sim.deliver("a", sim.send("b", "a"))[0]
    assert sim.live("a") == sim.live("b") == {"a", "b"}


def test_a_replayed_or_reordered_message_is_ignored_and_counted() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.1)
    old = sim.send("b", "a")
    sim.deliver("a", sim.send("b", "a"))
    assert sim.deliver("a", old) == (False, False)
    assert sim.tables["a"].counters["replayed"] == 1


def test_a_restarted_peer_is_accepted_but_its_previous_run_is_not() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.1)
    before = sim.send("b", "a")  # captured from b's first run
    sim.tables["b"] = Table("b", 5000, S, sim.now)  # b restarts with a new incarnation
    sim.tables["b"].set_peers({"a": ("10.0.0.1", 7947)}, sim.now)
    sim.run(0.1)
    assert sim.live("a") == {"a", "b"} and sim.tables["a"].peers["b"].incarnation == 5000
    sim.deliver("a", before)
    assert sim.tables["a"].counters["stale_incarnation"] == 1


def test_a_leave_removes_the_peer_at_once_and_reports_do_not_revive_it() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.2)
    report = sim.send("b", "a")  # b still reports having heard c a moment ago
    sim.deliver("a", sim.send("c", "a", LEAVE))
    assert sim.live("a") == {"a", "b"} and sim.tables["a"].peers["c"].state == LEFT
    sim.deliver("a", report)
    assert sim.live("a") == {"a", "b"}


def test_a_cut_link_between_two_peers_is_bridged_by_a_third_ones_reports() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.2)
    sim.cut({"a"}, {"c"})
    sim.run(2.0)
    assert sim.live("a") == sim.live("c") == {"a", "b", "c"}
    assert sim.tables["a"].peers["c"].heard is not None
    assert sim.now - sim.tables["a"].peers["c"].heard > 1.5  # only indirect evidence left


def test_reports_carry_the_time_last_heard_so_a_crash_is_not_detected_later() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.3)
    sim.crashed.add("c")
    crash = sim.now
    sim.run(0.3)  # a and b keep exchanging reports about c
    peer = sim.tables["a"].peers["c"]
    assert peer.indirect is not None and peer.heard is not None
    assert max(peer.heard, peer.indirect) <= crash + 1e-6
    assert sim.tables["a"].state_of(peer, crash + S.dead_after * S.interval + 1e-6) == DEAD


def test_a_partition_makes_each_side_see_the_other_dead_and_healing_converges() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.2)
    sim.cut({"a", "b"}, {"c"})
    sim.run(0.5)
    assert sim.live("a") == sim.live("b") == {"a", "b"}
    assert sim.live("c") == {"c"}
    sim.down.clear()
    sim.run(0.1)
    assert sim.live("a") == sim.live("b") == sim.live("c") == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("message", "counter"),
    [(Message(HEARTBEAT, "mallory", 1, 1, 1000), "unknown_sender"),
     (Message(HEARTBEAT, "b", 0, 1, 1000), "stale_incarnation")],
    ids=["a sender outside the peer list is ignored", "incarnation zero is never accepted"],
)
def test_messages_outside_the_rules_are_ignored_and_counted(message: Message, counter: str) -> None:
    sim = Sim(["a", "b"])
    assert sim.tables["a"].receive(message, sim.now) == (False, False)
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
    sim.run(0.3)  # a has learnt the path's base offset from several heartbeats
    queued = sim.send("b", "a")  # b's last words before it crashes ...
    sim.crashed.add("b")
    sent = sim.now
    sim.now += 0.35  # ... read 350 ms later by a CPU-starved a
    sim.deliver("a", queued)
    peer = sim.tables["a"].peers["b"]
    assert peer.heard == pytest.approx(sent, abs=0.002)
    while "b" in sim.live("a"):
        sim.now += 0.01
    # dated by its arrival, b would live until sent + 0.35 + 0.4; the stall hold adds one period
    assert sim.now - sent <= S.dead_after * S.interval + S.interval + 0.011


def test_a_slowly_drifting_clock_of_a_peer_is_tolerated() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.2)
    b, a = sim.tables["b"], sim.tables["a"]
    for step in range(1, 600):  # b's clock runs 500 ppm slow for a minute
        sim.now += 0.1
        a.receive(b.message(HEARTBEAT, b.peers["a"], sim.now - step * 0.1 * 0.0005), sim.now)
        a.expire(sim.now)
    peer = a.peers["b"]
    assert peer.heard is not None and sim.now - peer.heard < 0.01
    assert peer.state == ALIVE


def test_after_this_node_stalls_nobody_is_declared_dead_before_the_backlog_is_read() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.3)
    sim.now += 2.0  # a's event loop was blocked for two seconds; b kept sending
    assert not sim.tables["a"].expire(sim.now)  # first look after the stall: hold, no verdict
    assert sim.tables["a"].peers["b"].state == ALIVE
    backlog = sim.send("b", "a")
    sim.deliver("a", backlog)
    sim.now += S.interval / 2
    sim.tables["a"].expire(sim.now)
    assert "b" in sim.live("a")
    sim.crashed.add("b")  # a real crash afterwards is still detected
    sim.run(S.dead_after * S.interval + S.interval)
    assert "b" not in sim.live("a")


def test_constant_lag_on_an_overloaded_host_delays_a_verdict_by_at_most_one_period() -> None:
    sim = Sim(["a", "b"])
    sim.run(0.3)
    sim.crashed.add("b")
    crash = sim.now
    while "b" in sim.live("a"):  # every look comes 250 ms after the previous one
        sim.now += 0.25
    assert sim.tables["a"].counters["stalls"] >= 1
    assert sim.now - crash <= S.dead_after * S.interval + S.interval + 0.25
