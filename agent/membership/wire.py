"""The membership wire format: one authenticated UDP datagram per message.

Layout (network byte order), followed by a 32-byte HMAC-SHA256 tag over everything
before it::

    magic "IL" | version u8 | kind u8 | name_len u8 | sender name (UTF-8)
    | incarnation u64 | seq u64 | echo u64 | sent_ms u64 | n u16
    | n x (peer id 8 bytes, age_ms u16)

- ``incarnation`` identifies one run of the sender's agent (chosen at start);
  ``seq`` rises by one for every message the sender sends in that run.
- ``echo`` is the receiver's incarnation as the sender last heard it (0 if unknown).  A
  receiver only counts a message as liveness when the echo is its *own current*
  incarnation: that proves the message was made during the receiver's present run,
  which is the freshness window (no synchronised clocks needed).
- ``sent_ms`` is the sender's monotonic clock when it sent the message.  Clocks of two
  hosts are not comparable, but the *minimum* of (receive time - sent_ms) over recent
  messages is the path's base offset, so the receiver can date the message by when it
  was sent, not by when it got round to reading it (a queued heartbeat of a node that has
  since crashed must not count as fresh).
- The entries are the sender's first-hand observations: "I heard peer X ``age_ms`` ago"
  (measured at ``sent_ms``).
  Peer ids are the first 8 bytes of BLAKE2b(name), so a packet stays small.

The decoder checks the tag first (constant-time) and only then parses; every malformed
input raises :class:`Malformed`, never anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

MAGIC = b"IL"
VERSION = 1
HEARTBEAT = 1
LEAVE = 2
KINDS = (HEARTBEAT, LEAVE)

TAG_LEN = 32
MAX_NAME = 253  # a Kubernetes node name (DNS subdomain)
MAX_AGE_MS = 0xFFFF
MAX_DATAGRAM = 1472  # fits one Ethernet frame over IPv4 UDP
_HEAD = struct.Struct("!2sBBB")
_NUMS = struct.Struct("!QQQQH")
_ENTRY = struct.Struct("!8sH")
#: Largest number of entries that keeps a datagram within MAX_DATAGRAM for any name.
MAX_ENTRIES = (MAX_DATAGRAM - _HEAD.size - MAX_NAME - _NUMS.size - TAG_LEN) // _ENTRY.size


class Malformed(ValueError):
    """The datagram is not a valid, authenticated membership message."""

    def __init__(self, reason: str) -> None:
        self.reason = reason  # short counter key: "bad_mac", "malformed", ...
        super().__init__(reason)


def peer_id(name: str) -> bytes:
    """The 8-byte id a node is known by inside heartbeat entries."""
    return hashlib.blake2b(name.encode(), digest_size=8).digest()


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


def encode(msg: Message, key: bytes) -> bytes:
    """Serialise and sign ``msg``; raises ValueError naming the field that does not fit."""
    name = msg.sender.encode()
    if not 0 < len(name) <= MAX_NAME:
        raise ValueError(f"sender name {msg.sender!r} must be 1-{MAX_NAME} bytes of UTF-8")
    if msg.kind not in KINDS:
        raise ValueError(f"message kind {msg.kind} must be one of {KINDS}")
    if len(msg.entries) > MAX_ENTRIES:
        raise ValueError(f"{len(msg.entries)} entries exceed the limit of {MAX_ENTRIES} per datagram")
    parts = [
        _HEAD.pack(MAGIC, VERSION, msg.kind, len(name)),
        name,
        _NUMS.pack(msg.incarnation, msg.seq, msg.echo, msg.sent_ms, len(msg.entries)),
    ]
    parts.extend(_ENTRY.pack(pid, min(max(age, 0), MAX_AGE_MS)) for pid, age in msg.entries)
    body = b"".join(parts)
    return body + hmac.digest(key, body, "sha256")


def decode(data: bytes, key: bytes) -> Message:
    """Verify and parse one datagram; raise :class:`Malformed` for anything else."""
    if len(data) > MAX_DATAGRAM or len(data) < _HEAD.size + 1 + _NUMS.size + TAG_LEN:
        raise Malformed("malformed")
    body, tag = data[:-TAG_LEN], data[-TAG_LEN:]
    if not hmac.compare_digest(tag, hmac.digest(key, body, "sha256")):
        raise Malformed("bad_mac")
    magic, version, kind, name_len = _HEAD.unpack_from(body, 0)
    if magic != MAGIC or version != VERSION or kind not in KINDS or name_len == 0:
        raise Malformed("malformed")
    offset = _HEAD.size
    if len(body) < offset + name_len + _NUMS.size:
        raise Malformed("malformed")
    try:
        sender = body[offset : offset + name_len].decode()
    except UnicodeDecodeError:
        raise Malformed("malformed") from None
    offset += name_len
    incarnation, seq, echo, sent_ms, count = _NUMS.unpack_from(body, offset)
    offset += _NUMS.size
    if len(body) != offset + count * _ENTRY.size:
        raise Malformed("malformed")
    entries = tuple(_ENTRY.iter_unpack(body[offset:]))
    return Message(kind, sender, incarnation, seq, echo, entries, sent_ms)
