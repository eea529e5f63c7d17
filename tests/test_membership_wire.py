"""The signed datagram format, the keyring, the key files and peer addresses; the decoder is fuzzed."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb.agent.membership.settings import load_key, load_keys, parse_address
from ironlb.agent.membership.wire import (
    HEARTBEAT,
    LEAVE,
    MAX_DATAGRAM,
    MAX_ENTRIES,
    OBITUARY,
    Keyring,
    Malformed,
    Message,
    decode,
    encode,
    key_id,
    peer_id,
)
from ironlb.errors import ConfigError

KEY = b"s" * 32
OTHER = b"o" * 32
TOP = 2**64 - 1
ALL_ENTRIES = tuple((peer_id(str(i)), i) for i in range(MAX_ENTRIES))
FULL = Message(HEARTBEAT, "n" * 253, TOP, TOP, TOP, ALL_ENTRIES, TOP, 0xFFFF)


@pytest.mark.parametrize(
    "msg",
    [
        Message(HEARTBEAT, "node-1", 7, 1, 0, next_ms=25),
        Message(LEAVE, "nœud-ü", 1, 99, 5),
        Message(OBITUARY, "n2", 3, 4, 5, ((peer_id("n9"), 110),), 77, 767),
        FULL,
    ],
    ids=[
        "a heartbeat with its promise",
        "a leave from a node with a UTF-8 name",
        "an obituary naming one peer",
        "the largest message",
    ],
)
def test_messages_survive_a_round_trip(msg: Message) -> None:
    data = encode(msg, KEY)
    assert len(data) <= MAX_DATAGRAM
    assert decode(data, KEY) == dataclasses.replace(msg, key_id=key_id(KEY))


def test_the_key_id_is_public_and_reveals_nothing_but_identity() -> None:
    assert key_id(KEY) != key_id(OTHER) and 0 <= key_id(KEY) < 2**32
    data = encode(Message(HEARTBEAT, "a", 1, 1, 1), KEY)
    assert int.from_bytes(data[4:8], "big") == key_id(KEY)
    assert KEY not in repr(Keyring(KEY, OTHER)).encode() and OTHER not in repr(Keyring(KEY, OTHER)).encode()


def test_a_keyring_signs_with_one_key_and_accepts_both() -> None:
    ring = Keyring(OTHER, KEY)
    for signer in (KEY, OTHER):
        assert decode(encode(Message(HEARTBEAT, "a", 1, 1, 1), signer), ring).key_id == key_id(signer)
    assert decode(encode(Message(HEARTBEAT, "a", 1, 1, 1), ring), OTHER).key_id == key_id(OTHER)
    labels = (ring.label(key_id(OTHER)), ring.label(key_id(KEY)), ring.label(1))
    assert labels == ("current", "next", "unknown")


def _resign(body: bytes, key: bytes = KEY) -> bytes:
    return body + hmac.digest(key, body, "sha256")


GOOD = encode(Message(HEARTBEAT, "a", 1, 1, 1, ((peer_id("b"), 5),)), KEY)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encode(Message(HEARTBEAT, "a", 1, 1, 1), OTHER), "unknown_key"),
        (GOOD[:4] + OTHER[:4] + GOOD[8:], "unknown_key"),
        (_resign(GOOD[:-32], OTHER), "bad_mac"),
        (GOOD[:-1] + bytes([GOOD[-1] ^ 1]), "bad_mac"),
        (GOOD[:10], "malformed"),
        (b"\0" * (MAX_DATAGRAM + 1), "malformed"),
        (_resign(GOOD[:-32] + b"\0"), "malformed"),
        (_resign(b"XX" + GOOD[2:-32]), "malformed"),
        (_resign(GOOD[:2] + b"\x01" + GOOD[3:-32]), "malformed"),
        (_resign(GOOD[:3] + b"\x07" + GOOD[4:-32]), "malformed"),
        (_resign(GOOD[:9] + b"\xff" + GOOD[10:-32]), "malformed"),
    ],
    ids=[
        "a message signed with a key we do not hold is refused without an HMAC",
        "a key id we do not hold is refused without an HMAC",
        "our key id with another key's tag is refused",
        "a flipped bit in the tag is refused",
        "a truncated datagram is malformed",
        "an oversized datagram is malformed",
        "a trailing byte after the entries is malformed",
        "a wrong magic is malformed",
        "version 1 (before lanes and key ids) is malformed",
        "an unknown kind is malformed",
        "a name that is not UTF-8 is malformed",
    ],
)
def test_bad_datagrams_raise_malformed_with_the_counter_to_bump(data: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as e:
        decode(data, KEY)
    assert e.value.reason == reason


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=1600))
def test_random_bytes_never_raise_anything_but_malformed(data: bytes) -> None:
    try:
        decode(data, KEY)
    except Malformed:
        pass


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=1440))
def test_correctly_signed_garbage_reaches_the_parser_and_is_refused_cleanly(body: bytes) -> None:
    """Signing random bodies behind a valid head exercises the parser behind the MAC check."""
    head = GOOD[:8]  # magic, version, kind, our key id
    try:
        msg = decode(_resign(head + body), KEY)
    except Malformed as e:
        assert e.reason == "malformed"
    else:
        assert encode(msg, KEY) == _resign(head + body)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=1, max_size=40),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.lists(st.tuples(st.binary(min_size=8, max_size=8), st.integers(0, 0xFFFF)), max_size=20),
)
def test_mutated_valid_messages_never_raise_anything_but_malformed(
    salt: bytes, inc: int, seq: int, entries: list[tuple[bytes, int]]
) -> None:
    data = bytearray(encode(Message(HEARTBEAT, "node", inc, seq, 3, tuple(entries)), KEY))
    index = int.from_bytes(hashlib.sha256(salt).digest()[:4], "big") % (len(data) - 32)
    data[index] ^= salt[0] or 1
    try:
        decode(_resign(bytes(data[:-32])), KEY)
    except Malformed:
        pass


def test_a_key_file_is_read_and_its_trailing_newline_dropped(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"x" * 40 + b"\n")
    assert load_key(str(path)) == b"x" * 40


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot be read"), (b"tiny-secret-value\n", "holds 17 bytes; at least 32")],
    ids=[
        "a missing key file names the path and the Secret",
        "a short key names its length, never its content",
    ],
)
def test_key_file_errors_name_the_path_and_never_the_key(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    path = tmp_path / "membership-key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_key(str(path))
    assert str(path) in str(e.value) and words in str(e.value)
    assert "tiny-secret-value" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 7947)),
        ("10.0.0.1:9000", ("10.0.0.1", 9000)),
        ("fd00::1", ("fd00::1", 7947)),
        ("[fd00::1]:9000", ("fd00::1", 9000)),
        ("[::1]", ("::1", 7947)),
    ],
    ids=[
        "IPv4 takes the default port",
        "IPv4 with a port",
        "IPv6 takes the default port",
        "bracketed IPv6 with a port",
        "bracketed IPv6 without a port",
    ],
)
def test_peer_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    assert parse_address("n1", text, 7947) == expected


@pytest.mark.parametrize(
    "text",
    ["node-1.example", "10.0.0.1:0", "[fd00::1]x", "10.0.0.1:http"],
    ids=["a host name", "port zero", "junk after the bracket", "a service name"],
)
def test_bad_peer_addresses_name_the_node_and_value(text: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_address("n1", text, 7947)
    assert '"n1"' in str(e.value) and text in str(e.value)


def test_a_rotation_keyring_comes_from_two_files(tmp_path: Path) -> None:
    current, upcoming = tmp_path / "key", tmp_path / "next-key"
    current.write_bytes(KEY + b"\n")
    upcoming.write_bytes(OTHER)
    assert load_keys(str(current)) == Keyring(KEY)
    assert load_keys(str(current), str(upcoming)) == Keyring(KEY, OTHER)


def test_a_short_next_key_is_refused_by_its_file_name(tmp_path: Path) -> None:
    current, upcoming = tmp_path / "key", tmp_path / "next-key"
    current.write_bytes(KEY)
    upcoming.write_bytes(b"short")
    with pytest.raises(ConfigError) as e:
        load_keys(str(current), str(upcoming))
    assert str(upcoming) in str(e.value) and "at least 32" in str(e.value)
