"""Fast lanes, obituaries, the grab-all guard and key rotation, on the simulated network.

:class:`tests.membership_support.Sim` moves signed datagrams between pure tables on a fake
clock.  Large clusters step the clock in 5 ms quanta, so their timings carry up to 5 ms of
quantisation on top of the rules.
"""

from __future__ import annotations

import pytest

from ironlb.agent.membership.core import SUSPECT, Table
from ironlb.agent.membership.settings import MembershipSettings
from ironlb.agent.membership.wire import OBITUARY, Keyring, decode, encode, peer_id
from tests.membership_support import KEY, S, Sim

FAST = S.interval
DETECT = S.dead_after * S.interval
NAMES_50 = [f"n{i:02d}" for i in range(50)]
QUANTUM = 0.005


def big() -> Sim:
    sim = Sim(NAMES_50)
    sim.run(1.0, max_step=QUANTUM, min_step=QUANTUM)
    assert all(sim.live(n) == set(NAMES_50) for n in NAMES_50), "50 nodes joined within a second"
    for table in sim.tables.values():  # steady state: joining spent the burst, which refills in ~5 s
        table.bucket.tokens = table.bucket.burst
    return sim


def watchers_of(sim: Sim, node: str) -> list[str]:
    return [p.name for p in sim.tables[node].peers.values() if p.fast]


# -- lanes and budget ------------------------------------------------------------------------
def test_at_50_nodes_every_node_keeps_three_fast_lanes_and_its_packet_budget() -> None:
    sim = big()
    assert all(len(watchers_of(sim, n)) == S.watchers for n in NAMES_50)
    watched = {n: 0 for n in NAMES_50}
    for n in NAMES_50:
        for w in watchers_of(sim, n):
            watched[w] += 1
    assert set(watched.values()) == {S.watchers}, "the ring gives every node as many fast lanes in as out"
    before, start = dict(sim.sent), sim.now
    sim.crashed.add("n07")  # obituaries and re-picked lanes count against the budget too
    sim.run(3.0, max_step=QUANTUM, min_step=QUANTUM)
    for n in NAMES_50:
        if n != "n07":
            rate = (sim.sent[n] - before[n]) / (sim.now - start)
            assert rate <= S.max_packets_per_second, (n, rate)


def test_receivers_judge_each_peer_by_the_lane_it_promised_them() -> None:
    sim = big()
    watcher = watchers_of(sim, "n00")[0]
    slow = next(n for n in NAMES_50[1:] if n not in watchers_of(sim, "n00"))
    fast_promise = sim.tables[watcher].peers["n00"].promise
    slow_promise = sim.tables[slow].peers["n00"].promise
    assert fast_promise is not None and fast_promise == pytest.approx(FAST, abs=0.006)
    assert slow_promise is not None and slow_promise > 0.3


# -- crash detection at 50 nodes ---------------------------------------------------------------
def test_at_50_nodes_a_crash_is_known_everywhere_within_about_the_fast_window() -> None:
    sim = big()
    sim.crashed.add("n21")
    crash = sim.now
    took = sim.until(
        lambda: all("n21" not in sim.live(n) for n in NAMES_50 if n != "n21"),
        max_step=QUANTUM,
        min_step=QUANTUM,
    )
    assert took <= DETECT + FAST + 2 * QUANTUM, f"{took * 1000:.0f} ms"
    for n in NAMES_50:
        if n != "n21":
            assert sim.lost_since(n, crash) == {"n21"}, f"{n} lost more than the crashed node"


def test_at_50_nodes_one_bad_link_does_not_kill_a_node() -> None:
    sim = big()
    watcher = watchers_of(sim, "n05")[0]
    sim.cut({"n05"}, {watcher})
    start = sim.now
    sim.run(3.0, max_step=QUANTUM, min_step=QUANTUM)
    for n in NAMES_50:
        assert not sim.lost_since(n, start), f"{n} dropped {sim.lost_since(n, start)}"
    assert sim.tables[watcher].counters["obituaries_sent"] >= 1, "the watcher did vote, once, alone"


def test_two_nodes_of_fifty_dying_together_are_both_found() -> None:
    sim = big()
    sim.crashed |= {"n10", "n11"}
    took = sim.until(
        lambda: all(not {"n10", "n11"} & sim.live(n) for n in NAMES_50 if n not in sim.crashed),
        max_step=QUANTUM,
        min_step=QUANTUM,
    )
    assert took <= DETECT + FAST + 2 * QUANTUM, f"{took * 1000:.0f} ms"


def test_when_too_few_voters_are_left_the_slow_backstop_still_decides() -> None:
    settings = MembershipSettings(quorum=3)  # three votes, but only the victim's 3 watchers can vote
    sim = Sim(NAMES_50[:12], settings)
    sim.run(1.0, max_step=QUANTUM, min_step=QUANTUM)
    victim = "n03"
    for w in watchers_of(sim, victim)[:1]:
        sim.cut({victim}, {w})
    start = sim.now
    sim.run(2.0, max_step=QUANTUM, min_step=QUANTUM)
    assert not any(sim.lost_since(n, start) for n in sim.names), "one silent lane is not a death"
    sim.crashed.add(victim)
    took = sim.until(
        lambda: all(victim not in sim.live(n) for n in sim.names if n != victim),
        max_step=QUANTUM,
        min_step=QUANTUM,
    )
    assert took <= settings.dead_after * settings.slow_period(12) + 2 * QUANTUM


# -- votes -----------------------------------------------------------------------------------
def test_a_vote_lapses_once_anyone_hears_the_peer_after_the_voter_lost_it() -> None:
    table = Table("a", 1, S, 0.0)
    table.set_peers({n: (f"10.0.0.{i}", 7947) for i, n in enumerate("abcdefgh", 1)}, 0.0)
    for p in table.peers.values():
        p.state, p.heard, p.promise = "alive", 0.9, 0.5
    x = table.peers["h"]
    x.obits = {"b": 0.95, "c": 0.95}
    assert table.votes(x, 1.0) == 2
    x.indirect = 0.95 + S.dead_after * FAST  # heard a whole fast window after b and c last did
    assert table.votes(x, 1.1) == 0 and not x.obits


def test_a_falsely_accused_node_refutes_at_once_and_stays_alive_everywhere() -> None:
    sim = big()
    accuser, accused = "n01", "n02"
    table = sim.tables[accuser]
    obit = table.message(OBITUARY, table.peers[accused], sim.now, ((peer_id(accused), 120),))
    for n in NAMES_50:
        if n != accuser:
            sim.deliver(
                accuser,
                n,
                encode(
                    obit
                    if n == accused
                    else table.message(OBITUARY, table.peers[n], sim.now, ((peer_id(accused), 120),)),
                    sim.keys[accuser],
                ),
            )
    assert sim.tables[accused].counters["refutations"] == 1
    assert all(p.reply_due for p in sim.tables[accused].peers.values()), "it answers everyone at once"
    start = sim.now
    sim.run(1.0, max_step=QUANTUM, min_step=QUANTUM)
    assert not any(sim.lost_since(n, start) for n in NAMES_50)


# -- the grab-all guard ------------------------------------------------------------------------
def test_a_node_cut_off_from_everyone_keeps_its_live_set_while_the_others_drop_it() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    sim.cut({"c"}, {"a", "b"})
    cut = sim.now
    sim.run(1.0)
    assert sim.live("a") == sim.live("b") == {"a", "b"}
    assert sim.live("c") == {"a", "b", "c"} and not sim.lost_since("c", cut), "c takes nothing over"
    assert sim.tables["c"].isolated_since is not None and sim.tables["c"].counters["isolations"] == 1
    assert all(p.state == SUSPECT for p in sim.tables["c"].peers.values())
    sim.down.clear()
    sim.until(lambda: all(sim.live(n) == {"a", "b", "c"} for n in "ab"), limit=1.0)
    sim.run(FAST)
    assert sim.live("c") == {"a", "b", "c"} and sim.tables["c"].isolated_since is None


def test_at_50_nodes_a_cut_off_node_keeps_its_set_and_everyone_else_drops_it_fast() -> None:
    sim = big()
    sim.cut({"n30"}, set(NAMES_50) - {"n30"})
    cut = sim.now
    took = sim.until(
        lambda: all("n30" not in sim.live(n) for n in NAMES_50 if n != "n30"),
        max_step=QUANTUM,
        min_step=QUANTUM,
    )
    assert took <= DETECT + FAST + 2 * QUANTUM
    sim.run(5.0, max_step=QUANTUM, min_step=QUANTUM)
    assert not sim.lost_since("n30", cut) and sim.tables["n30"].isolated_since is not None


def test_when_kubernetes_reports_the_silent_nodes_not_ready_the_survivor_takes_over() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    sim.crashed |= {"a", "b"}  # the rest of the cluster really died ...
    sim.run(1.0)
    assert sim.live("c") == {"a", "b", "c"}, "... but while their Nodes are Ready, c cannot tell"
    sim.tables["c"].set_peers(dict(sim.addr), sim.now, ready={"c", "a"})  # b goes NotReady first
    sim.run(0.1)
    assert sim.live("c") == {"a", "b", "c"}, "a's Node is still Ready: keep holding everyone"
    sim.tables["c"].set_peers(dict(sim.addr), sim.now, ready={"c"})  # ~40 s later, a too
    sim.run(0.05)
    assert sim.live("c") == {"c"} and sim.tables["c"].isolated_since is None


def test_a_held_node_that_hears_one_peer_again_drops_only_the_silent_ones() -> None:
    sim = Sim(["a", "b", "c", "d"])
    sim.run(0.1)
    sim.cut({"d"}, {"a", "b", "c"})
    sim.run(0.5)
    assert sim.live("d") == {"a", "b", "c", "d"}
    sim.crashed |= {"b", "c"}  # while d was cut off, b and c died
    sim.down.clear()
    sim.until(lambda: sim.live("d") == {"a", "d"}, limit=1.0)
    assert sim.tables["d"].isolated_since is None


@pytest.mark.parametrize(
    ("names", "min_peers"),
    [(["a", "b"], 2), (["a", "b", "c"], 0)],
    ids=[
        "a two-node cluster cannot tell a cut from a crash: it fails over",
        "isolation_min_peers 0 turns the guard off",
    ],
)
def test_where_the_guard_does_not_apply_a_lone_node_takes_over(names: list[str], min_peers: int) -> None:
    sim = Sim(names, MembershipSettings(isolation_min_peers=min_peers))
    sim.run(0.1)
    sim.cut({"a"}, set(names) - {"a"})
    sim.run(0.3)
    assert sim.live("a") == {"a"} and sim.tables["a"].counters["isolations"] == 0


def test_one_crash_while_another_peer_is_heard_is_a_plain_failover() -> None:
    sim = Sim(["a", "b", "c"])
    sim.run(0.1)
    sim.crashed.add("b")
    sim.run(0.3)
    assert sim.live("a") == {"a", "c"} and sim.tables["a"].counters["isolations"] == 0


# -- key rotation ----------------------------------------------------------------------------
OLD, NEW = KEY, b"n" * 32
STEPS = [
    ("1: every agent also accepts the next key", Keyring(OLD, NEW)),
    ("2: every agent signs with the next key, still accepting the old one", Keyring(NEW, OLD)),
    ("3: the old key is dropped", Keyring(NEW)),
]


def test_a_rolling_restart_through_every_rotation_step_never_splits_the_cluster() -> None:
    names = ["a", "b", "c", "d"]
    sim = Sim(names, keys=dict.fromkeys(names, Keyring(OLD)))
    sim.run(0.2)
    start, incarnation = sim.now, 5000
    for step, keys in STEPS:
        for name in names:  # one agent at a time, as a DaemonSet rolls
            incarnation += 1
            sim.restart(name, incarnation, keys)
            sim.run(0.3)
            mixed = {n: sim.keys[n] for n in names}
            assert all(sim.live(n) == set(names) for n in names), (step, name, mixed)
        assert all(sim.tables[n].peers[p].key_id == keys.sign_id for n in names for p in names if p != n)
    assert not any(sim.lost_since(n, start) for n in names)
    assert not any(sim.refused.values()), "no datagram was ever refused for its key"


def test_skipping_the_first_rotation_step_does_split_the_cluster() -> None:
    names = ["a", "b", "c"]
    sim = Sim(names, keys=dict.fromkeys(names, Keyring(OLD)))
    sim.run(0.2)
    sim.restart("a", 7000, Keyring(NEW, OLD))  # signs with NEW before b and c accept it
    sim.run(0.5)
    assert sim.live("b") == {"b", "c"} and sim.refused["b"] > 0


def test_the_decoder_picks_the_key_by_its_id_so_one_datagram_costs_one_hmac() -> None:
    ring = Keyring(NEW, OLD)
    sim = Sim(["a", "b"], keys={"a": Keyring(OLD), "b": ring})
    sim.run(0.1)
    data = sim.send("a", "b")
    assert decode(data, ring).key_id == Keyring(OLD).sign_id
    assert sim.tables["b"].peers["a"].key_id == ring.also_id
