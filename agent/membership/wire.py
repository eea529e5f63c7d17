"""The membership wire format: one authenticated UDP datagram per message, and the keyring.

Layout (network byte order), followed by a 32-byte HMAC-SHA256 tag over everything
before it::

    magic "IL" | version u8 (2) | kind u8 | key id u32 | name_len u8 | sender name (UTF-8)
    | incarnation u64 | seq u64 | echo u64 | sent_ms u64 | next_ms u16 | n u16
    | n x (peer id 8 bytes, age_ms u16)

- ``key id`` names the key that signed the datagram (a 32-bit tag derived from the key
  with HMAC, so it reveals nothing of it).  A receiver holds a *keyring*: the key it signs
  with and, during a rotation, one more key it also accepts (docs/decisions/0030).  The
  id picks the key, so a datagram costs at most one HMAC whatever the keyring holds, and
  status can say which key each peer signs with.
- ``incarnation`` identifies one run of the sender's agent (chosen at start);
  ``seq`` rises by one for every message the sender sends in that run.
- ``echo`` is the receiver's incarnation as the sender last heard it (0 if unknown).  A
  receiver only counts a message as liveness when the echo is its *own current*
  incarnation: that proves the message was made during the receiver's present run,
  which is the freshness window (no synchronised clocks needed).
- ``sent_ms`` is the sender's monotonic clock when it sent the message.  Clocks of two
  hosts are not comparable, but the *minimum* of (receive time - sent_ms) over recent
  messages is the path's base offset, so the receiver can date the message by when it
  was sent, not by when it got round to reading it.
- ``next_ms`` is the sender's *promise*: its next heartbeat to this receiver follows
  within that many milliseconds (0: no promise, e.g. a LEAVE).  Receivers judge a peer
  by what it promised them, so a sender can give a few peers a fast lane and the rest a
  slow one without anyone having to agree on a schedule.
- The entries of a HEARTBEAT are the sender's first-hand observations: "I heard peer X
  ``age_ms`` ago" (measured at ``sent_ms``).  The entries of an OBITUARY are the peers the
  sender watched on a fast lane and found silent: "I last heard X ``age_ms`` ago, and I
  vote it dead".  Peer ids are the first 8 bytes of BLAKE2b(name), so a packet stays small.

The decoder reads only the fixed 9-byte head (magic, version, kind, key id) before it
checks the tag (constant-time); everything of variable length is parsed after the tag
matched.  Every malformed input raises :class:`Malformed`, never anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

MAGIC = b"IL"
VERSION = 2
HEARTBEAT = 1
LEAVE = 2
OBITUARY = 3
KINDS = (HEARTBEAT, LEAVE, OBITUARY)

TAG_LEN = 32
MAX_NAME = 253  # a Kubernetes node name (DNS subdomain)
MAX_AGE_MS = 0xFFFF
MAX_NEXT_MS = 0xFFFF
MAX_DATAGRAM = 1472  # fits one Ethernet frame over IPv4 UDP
_HEAD = struct.Struct("!2sBBIB")
_NUMS = struct.Struct("!QQQQHH")
_ENTRY = struct.Struct("!8sH")
_MIN_LEN = _HEAD.size + 1 + _NUMS.size + TAG_LEN
#: Largest number of entries that keeps a datagram within MAX_DATAGRAM for any name.
MAX_ENTRIES = (MAX_DATAGRAM - _HEAD.size - MAX_NAME - _NUMS.size - TAG_LEN) // _ENTRY.size
_KEY_ID_LABEL = b"ironlb membership key id v2"


class Malformed(ValueError):
    """The datagram is not a valid, authenticated membership message."""

    def __init__(self, reason: str) -> None:
        self.reason = reason  # short counter key: "bad_mac", "malformed", "unknown_key"
        super().__init__(reason)


def peer_id(name: str) -> bytes:
    """The 8-byte id a node is known by inside message entries."""
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


def key_id(key: bytes) -> int:
    """The public 32-bit id of ``key`` (an HMAC of a fixed label: reveals nothing of the key)."""
    return int.from_bytes(hmac.digest(key, _KEY_ID_LABEL, "sha256")[:4], "big")


@dataclass(frozen=True)
class Keyring:
    """The key this node signs with, and during a rotation one more key it accepts.

    ``repr`` never shows key material.
    """

    sign: bytes = field(repr=False)
    also: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.sign or (self.also is not None and not self.also):
            raise ValueError("membership keys must not be empty")
        if self.also is not None and self.also != self.sign and key_id(self.also) == key_id(self.sign):
            raise ValueError("the two membership keys have the same key id; generate another next key")

    @cached_property
    def sign_id(self) -> int:
        return key_id(self.sign)

    @cached_property
    def also_id(self) -> int | None:
        return None if self.also is None else key_id(self.also)

    @cached_property
    def by_id(self) -> dict[int, bytes]:
        """Accepted keys by id."""
        keys = {self.sign_id: self.sign}
        if self.also is not None and self.also_id is not None:
            keys.setdefault(self.also_id, self.also)
        return keys

    def label(self, kid: int) -> str:
        """What ``kid`` is to this node: "current" (the signing key), "next" or "unknown"."""
        if kid == self.sign_id:
            return "current"
        return "next" if kid in self.by_id else "unknown"


def as_keyring(key: bytes | Keyring) -> Keyring:
    return key if isinstance(key, Keyring) else _keyring(key)


@lru_cache(maxsize=16)  # bare keys are a convenience for tests and tools; the agent passes a Keyring
def _keyring(key: bytes) -> Keyring:
    return Keyring(key)


@dataclass(frozen=True)
class Message:
    """One decoded membership message."""

    kind: int
    sender: str
    incarnation: int
    seq: int
    echo: int
    entries: tuple[tuple[bytes, int], ...] = ()  # (peer id, age in ms)
    sent_ms: int = 0  # the sender's monotonic clock, milliseconds
    next_ms: int = 0  # promise: the next heartbeat to this receiver within this many ms (0: none)
    key_id: int = 0  # set by decode: the id of the key that verified it


@lru_cache(maxsize=MAX_ENTRIES + 1)
def _entries_struct(count: int) -> struct.Struct:
    return struct.Struct("!" + "8sH" * count)


def encode(msg: Message, key: bytes | Keyring) -> bytes:
    """Serialise and sign ``msg``; raises ValueError naming the field that does not fit."""
    ring = as_keyring(key)
    name = msg.sender.encode()
    if not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"sender name {msg.sender!r} must be 1-{MAX_NAME} bytes of UTF-8")
    if msg.kind not in KINDS:
        raise ValueError(f"message kind {msg.kind} must be one of {KINDS}")
    if len(msg.entries) > MAX_ENTRIES:
        raise ValueError(f"{len(msg.entries)} entries exceed the limit of {MAX_ENTRIES} per datagram")
    parts = [
        _HEAD.pack(MAGIC, VERSION, msg.kind, ring.sign_id, len(name)),
        name,
        _NUMS.pack(
            msg.incarnation,
            msg.seq,
            msg.echo,
            msg.sent_ms,
            min(max(msg.next_ms, 0), MAX_NEXT_MS),
            len(msg.entries),
        ),
    ]
    if msg.entries:
        flat = [x for pid, age in msg.entries for x in (pid, min(max(age, 0), MAX_AGE_MS))]
        parts.append(_entries_struct(len(msg.entries)).pack(*flat))
    body = b"".join(parts)
    return body + hmac.digest(ring.sign, body, "sha256")


def decode(data: bytes, key: bytes | Keyring) -> Message:
    """Verify and parse one datagram; raise :class:`Malformed` for anything else."""
    if len(data) > MAX_DATAGRAM or len(data) < _MIN_LEN:
        raise Malformed("malformed")
    magic, version, kind, kid, name_len = _HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise Malformed("malformed")
    secret = as_keyring(key).by_id.get(kid)
    if secret is None:
        raise Malformed("unknown_key")
    body, tag = data[:-TAG_LEN], data[-TAG_LEN:]
    if not hmac.compare_digest(tag, hmac.digest(secret, body, "sha256")):
        raise Malformed("bad_mac")
    if kind not in KINDS or name_len == 0 or len(body) < _HEAD.size + name_len + _NUMS.size:
        raise Malformed("malformed")
    offset = _HEAD.size
    try:
        sender = body[offset : offset + name_len].decode()
    except UnicodeDecodeError:
        raise Malformed("malformed") from None
    offset += name_len
    incarnation, seq, echo, sent_ms, next_ms, count = _NUMS.unpack_from(body, offset)
    offset += _NUMS.size
    if len(body) != offset + count * _ENTRY.size:
        raise Malformed("malformed")
    entries = tuple(_ENTRY.iter_unpack(body[offset:]))
    return Message(kind, sender, incarnation, seq, echo, entries, sent_ms, next_ms, kid)
