"""AdmissionPolicy, sans-IO: limits are never exceeded, trimming takes the least useful first."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.config import ConfigError, NetworkConfig, config_from_dict
from node.transport import AdmissionLimits, AdmissionPolicy
from node.transport._admission import Admission, HandshakeAdmission, PeerStats, Refusal, ip_key

from .._hyp import examples

SMALL = AdmissionLimits(
    max_handshakes=6,
    max_handshakes_per_ip=3,
    handshake_grace=1.0,
    max_connections_per_ip=5,
    max_connections_per_peer=2,
    connections_high=8,
    connections_low=5,
)

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
PEERS = ["0xA", "0xB", "0xC", "0xD", "0xE"]

op = st.one_of(
    st.tuples(st.just("accept"), st.sampled_from(IPS)),
    st.tuples(st.just("handshake_done"), st.integers(0, 50), st.sampled_from(PEERS)),
    st.tuples(st.just("handshake_failed"), st.integers(0, 50)),
    st.tuples(st.just("close"), st.integers(0, 50)),
    st.tuples(st.just("useful"), st.integers(0, 50), st.integers(0, 1 << 20)),
    st.tuples(st.just("strike"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.floats(0.0, 3.0)),
)


def _check_invariants(pol: AdmissionPolicy, lim: AdmissionLimits) -> None:
    assert pol.handshakes <= lim.max_handshakes
    assert pol.established <= lim.connections_high
    for ip in IPS:
        assert pol.handshakes_from(ip) <= lim.max_handshakes_per_ip
        assert pol.connections_from(ip) <= lim.max_connections_per_ip
    for peer in PEERS:
        assert pol.connections_of(peer) <= lim.max_connections_per_peer


@settings(max_examples=examples(300))
@given(st.lists(op, max_size=120))
def test_limits_never_exceeded_and_trim_takes_least_useful(ops: list[Any]) -> None:
    lim = SMALL
    pol = AdmissionPolicy(lim)
    now = 0.0
    next_id = 0
    pending: dict[int, str] = {}  # what the caller believes is in the handshake
    established: list[int] = []
    for o in ops:
        kind = o[0]
        if kind == "accept":
            next_id += 1
            got = pol.begin_handshake(next_id, o[1], now)
            if isinstance(got, HandshakeAdmission):
                if got.evict is not None:
                    assert got.evict in pending
                    evicted_ip = pending.pop(got.evict)
                    # Only the same IP (per-IP full) or anyone (global full) is evicted.
                    assert evicted_ip == o[1] or len(pending) + 1 >= lim.max_handshakes
                pending[next_id] = o[1]
            else:
                assert isinstance(got, Refusal)
        elif kind in ("handshake_done", "handshake_failed") and pending:
            cid = sorted(pending)[o[1] % len(pending)]
            ip = pending.pop(cid)
            pol.end_handshake(cid)
            if kind == "handshake_done":
                before = {c: pol.stats(c) for c in established}
                keys = {c: s.usefulness_key() for c, s in before.items() if s is not None}
                res = pol.admit(cid, ip, o[2], now)
                if isinstance(res, Admission):
                    established.append(cid)
                    if res.trim:
                        survivors = [c for c in established if c not in res.trim and c != cid]
                        worst_kept = min(keys[c] for c in survivors) if survivors else None
                        for victim in res.trim:
                            assert victim != cid
                            assert pol.stats(victim) is None
                            if worst_kept is not None:
                                assert keys[victim] <= worst_kept
                        assert pol.established == lim.connections_low
                        established = [c for c in established if c not in res.trim]
        elif kind == "close" and established:
            cid = established.pop(o[1] % len(established))
            pol.release(cid)
        elif kind == "useful" and established:
            pol.note_useful(established[o[1] % len(established)], now, o[2])
        elif kind == "strike" and established:
            pol.note_strike(established[o[1] % len(established)])
        elif kind == "tick":
            now += o[1]
        _check_invariants(pol, lim)
        assert pol.handshakes == len(pending)
        assert pol.established == len(established)


def test_full_handshake_budget_evicts_the_oldest_past_grace_only() -> None:
    pol = AdmissionPolicy(SMALL)
    for i in range(3):
        assert pol.begin_handshake(i, "10.0.0.1", 0.0) == HandshakeAdmission()
    # Per-IP full and nobody past the grace period: the newcomer is refused, logged once.
    first = pol.begin_handshake(10, "10.0.0.1", 0.5)
    again = pol.begin_handshake(11, "10.0.0.1", 0.6)
    assert isinstance(first, Refusal) and first.log
    assert isinstance(again, Refusal) and not again.log
    # Past the grace period the oldest of that IP makes room.
    assert pol.begin_handshake(12, "10.0.0.1", 1.5) == HandshakeAdmission(evict=0)
    assert pol.handshakes_from("10.0.0.1") == 3
    # Global budget: 3 more from other IPs fill it; the next evicts the oldest anywhere.
    for i, ip in enumerate(["10.0.0.2", "10.0.0.3", "10.0.0.4"]):
        assert pol.begin_handshake(20 + i, ip, 1.5) == HandshakeAdmission()
    assert pol.begin_handshake(30, "10.0.0.5", 2.0) == HandshakeAdmission(evict=1)
    assert pol.handshakes == SMALL.max_handshakes
    pol.end_handshake(1)  # the evicted one's own cleanup is a no-op
    assert pol.handshakes == SMALL.max_handshakes


def test_in_a_burst_the_busiest_ip_yields_its_oldest_handshake() -> None:
    pol = AdmissionPolicy(SMALL)
    for i in range(3):
        assert pol.begin_handshake(i, "10.0.0.1", 0.0) == HandshakeAdmission()
    for i, ip in enumerate(["10.0.0.2", "10.0.0.3", "10.0.0.4"]):
        assert pol.begin_handshake(10 + i, ip, 0.0) == HandshakeAdmission()
    # Full, nobody past the grace period: the IP with three in flight gives way, twice.
    assert pol.begin_handshake(20, "10.0.0.9", 0.1) == HandshakeAdmission(evict=0)
    assert pol.begin_handshake(21, "10.0.0.8", 0.1) == HandshakeAdmission(evict=1)
    # Now every IP has one: nobody crowds, nobody is old, the newcomer is refused.
    assert isinstance(pol.begin_handshake(22, "10.0.0.7", 0.2), Refusal)
    assert pol.handshakes == SMALL.max_handshakes


def test_identity_and_ip_caps_refuse_and_watermark_trims_idle_first() -> None:
    pol = AdmissionPolicy(SMALL)
    assert isinstance(pol.admit(1, "10.0.0.1", "0xA", 0.0), Admission)
    assert isinstance(pol.admit(2, "10.0.0.1", "0xA", 0.0), Admission)
    refusal = pol.admit(3, "10.0.0.1", "0xA", 0.0)
    assert isinstance(refusal, Refusal) and "identity" in refusal.reason
    for i, peer in enumerate(["0xB", "0xC", "0xD"]):
        assert isinstance(pol.admit(4 + i, "10.0.0.1", peer, 0.0), Admission)
    refusal = pol.admit(9, "10.0.0.1", "0xE", 0.0)
    assert isinstance(refusal, Refusal) and "IP" in refusal.reason
    # Fill to the high watermark from other IPs; 1 and 4 become useful, 5 misbehaves.
    for i in range(3):
        assert pol.admit(10 + i, "10.0.0.2", f"0x2{i}", 1.0) == Admission()
    pol.note_useful(1, 5.0, 1 << 20)
    pol.note_useful(4, 6.0)
    pol.note_strike(5)
    res = pol.admit(20, "10.0.0.3", "0x30", 7.0)
    assert isinstance(res, Admission)
    # 9 > high 8 -> trim to low 5: the misbehaver first, then the never-useful, oldest first.
    assert res.trim == (5, 2, 6, 10)
    assert pol.established == SMALL.connections_low
    assert {c for c in (1, 4, 11, 12, 20) if pol.stats(c) is not None} == {1, 4, 11, 12, 20}


def test_usefulness_order() -> None:
    idle = PeerStats(1, "ip", "0x1", opened_at=0.0)
    served = PeerStats(2, "ip", "0x2", opened_at=0.0, bytes_served=10, last_useful=1.0)
    bad = PeerStats(3, "ip", "0x3", opened_at=0.0, last_useful=9.0, strikes=2)
    order = sorted([served, idle, bad], key=PeerStats.usefulness_key)
    assert [s.conn_id for s in order] == [3, 1, 2]


def test_limits_from_config_and_validation() -> None:
    net = config_from_dict({"network": {"max_connections_per_peer": 4, "connections_low": 100}})
    lim = AdmissionLimits.from_config(net.network)
    assert lim.max_connections_per_peer == 4 and lim.connections_low == 100
    assert lim.max_handshakes == AdmissionLimits().max_handshakes
    defaults = AdmissionLimits.from_config(NetworkConfig())
    assert defaults == AdmissionLimits()
    with pytest.raises(ConfigError, match="connections_low"):
        config_from_dict({"network": {"connections_low": 300, "connections_high": 256}})
    with pytest.raises(ConfigError, match="max_handshakes_per_ip"):
        config_from_dict({"network": {"max_handshakes_per_ip": 0}})
    with pytest.raises(ValueError):
        AdmissionLimits(max_connections_per_peer=40, max_connections_per_ip=32)


def test_ip_key_counts_ipv6_by_its_64() -> None:
    assert ip_key("192.0.2.7") == "192.0.2.7"
    assert ip_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("fe80::1%eth0") == "fe80::/64"
    assert ip_key("not-an-ip") == "not-an-ip"


def test_refusals_are_counted_and_logged_once_per_key() -> None:
    pol = AdmissionPolicy(SMALL)
    for i in range(2):
        assert isinstance(pol.admit(i, "10.0.0.1", "0xA", 0.0), Admission)
    results = [pol.admit(9 + i, "10.0.0.1", "0xA", 0.0) for i in range(5)]
    assert [isinstance(r, Refusal) and r.log for r in results] == [True] + [False] * 4
    assert all(isinstance(r, Refusal) for r in results)
    other = pol.admit(20, "10.0.0.2", "0xB", 0.0)
    assert isinstance(other, Admission)
    assert pol.refused == 5
    assert pol.first_time("x") and not pol.first_time("x")
