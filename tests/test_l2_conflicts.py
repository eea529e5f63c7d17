"""The conflict rules (agent.l2.conflicts): probe verdicts, hand-over grace, RFC 5227 defence.

Pure: every time is an argument, nothing sleeps.
"""

from __future__ import annotations

import random

import pytest

from ironlb.agent.l2.conflicts import (
    DEFEND_INTERVAL,
    DEFENDING,
    REFUSED,
    Claim,
    Guard,
    Verdict,
    retry_delay,
)

FOREIGN = Claim("eth0", "02:77:00:00:00:64", "arp")
OLD_OWNER = Claim("eth0", "02:77:00:00:00:0c", "arp")
GRACE = 1.0


def probing(now: float = 100.0) -> Guard:
    g = Guard("10.77.0.200")
    g.start_probe(now, GRACE)
    return g


def test_a_quiet_round_announces_at_once() -> None:
    g = probing()
    assert g.end_round(100.07, 1e9) is Verdict.ANNOUNCE
    assert g.conflict is None


def test_the_previous_owner_answering_briefly_is_a_hand_over_not_a_conflict() -> None:
    g = probing()
    g.claimed_while_probing(OLD_OWNER)
    assert g.end_round(100.07, 1e9) is Verdict.AGAIN, "claimed within the grace: probe again"
    assert g.conflict is None, "nothing is reported while the grace runs"
    assert g.end_round(100.12, 1e9) is Verdict.ANNOUNCE, "it stopped answering: ours now"


def test_a_host_that_keeps_answering_past_the_grace_is_refused_with_a_record() -> None:
    g = probing()
    t = 100.0
    verdicts = []
    while True:
        g.claimed_while_probing(FOREIGN)
        t += 0.05
        verdicts.append(g.end_round(t, 1_700_000_000.0 + t))
        if verdicts[-1] is not Verdict.AGAIN:
            break
    assert verdicts[-1] is Verdict.REFUSE
    assert t >= 100.0 + GRACE, "not refused before the grace ran out"
    c = g.conflict
    assert c is not None and c.state == REFUSED and c.mac == FOREIGN.mac and c.interface == "eth0"
    assert g.attempts == 1


def test_a_zero_grace_refuses_on_the_first_claimed_round() -> None:
    g = Guard("fd77::c8")
    g.start_probe(5.0, 0.0)
    g.claimed_while_probing(FOREIGN)
    assert g.end_round(5.07, 1e9) is Verdict.REFUSE


def test_the_record_keeps_first_seen_across_retries_and_counts_claims() -> None:
    g = Guard("10.77.0.200")
    for attempt, t in enumerate((10.0, 20.0, 30.0), 1):
        g.start_probe(t, 0.0)
        g.claimed_while_probing(FOREIGN)
        assert g.end_round(t + 0.1, 1000.0 + t) is Verdict.REFUSE
        assert g.attempts == attempt
    c = g.conflict
    assert c is not None and c.first_seen == 1010.0 and c.last_seen == 1030.0 and c.claims == 3
    g.start_probe(40.0, 0.0)
    assert g.end_round(40.1, 1040.0) is Verdict.ANNOUNCE, "the host left: take the address"
    assert g.conflict is None and g.attempts == 0


def test_the_published_record_has_a_stable_shape() -> None:
    g = probing()
    g.claimed_while_probing(FOREIGN)
    g.end_round(
        200.0,
        1_700_000_000.123456,
    )
    assert g.conflict is not None
    assert g.conflict.as_dict() == {
        "ip": "10.77.0.200",
        "interface": "eth0",
        "mac": "02:77:00:00:00:64",
        "first_seen": 1_700_000_000.123,
        "last_seen": 1_700_000_000.123,
        "state": "refused",
        "claims": 1,
        "next_probe": None,
    }


def test_defence_is_at_most_once_per_defend_interval_and_the_address_is_kept() -> None:
    g = Guard("10.77.0.200")
    defend, changed = g.claimed_while_announcing(FOREIGN, 50.0, 1e9)
    assert (defend, changed) == (True, True), "first claim: defend, and a new conflict to report"
    assert g.conflict is not None and g.conflict.state == DEFENDING
    assert g.claimed_while_announcing(FOREIGN, 51.0, 1e9) == (False, False), "no second defence within 10 s"
    assert g.claimed_while_announcing(FOREIGN, 50.0 + DEFEND_INTERVAL - 0.01, 1e9)[0] is False
    assert g.claimed_while_announcing(FOREIGN, 50.0 + DEFEND_INTERVAL + 0.5, 1e9)[0] is True
    assert g.conflict.claims == 4


def test_a_defending_conflict_clears_only_after_a_quiet_period() -> None:
    g = Guard("10.77.0.200")
    g.claimed_while_announcing(FOREIGN, 10.0, 1e9)
    assert not g.clear_if_quiet(14.0, 6.0)
    g.claimed_while_announcing(FOREIGN, 14.0, 1e9)
    assert not g.clear_if_quiet(19.0, 6.0), "the quiet period restarts with every claim"
    assert g.clear_if_quiet(20.0, 6.0)
    assert g.conflict is None


def test_a_refused_record_is_not_cleared_by_quiet_time() -> None:
    g = Guard("10.77.0.200")
    g.start_probe(0.0, 0.0)
    g.claimed_while_probing(FOREIGN)
    g.end_round(0.1, 1e9)
    assert not g.clear_if_quiet(1000.0, 6.0), "only a successful probe ends a refusal"


@pytest.mark.parametrize(
    ("attempts", "cap", "expected"),
    [
        pytest.param(1, 30.0, 1.0, id="first retry after about 1 s"),
        pytest.param(2, 30.0, 2.0, id="then 2 s"),
        pytest.param(4, 30.0, 8.0, id="then doubling"),
        pytest.param(9, 30.0, 30.0, id="capped at conflict_retry"),
        pytest.param(1, 0.5, 0.5, id="a conflict_retry below 1 s caps the first retry too"),
        pytest.param(10_000, 30.0, 30.0, id="a huge attempt count does not overflow"),
    ],
)
def test_retries_back_off_with_jitter(attempts: int, cap: float, expected: float) -> None:
    rng = random.Random(7)
    for _ in range(50):
        delay = retry_delay(attempts, cap, rng)
        assert expected * 0.9 <= delay <= expected * 1.1
