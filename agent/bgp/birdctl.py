"""BIRD's control socket: one connection, one command at a time, replies parsed (pure parsers).

BIRD's CLI protocol is line based.  Every reply line starts with a four-digit code and a
``-`` (more lines follow) or a space (the last line); a line starting with a space
continues the previous code.  Codes ``0xxx`` mean done, ``1xxx``/``2xxx`` are table rows
and headings, ``8xxx``/``9xxx`` are errors (``doc/reply_codes`` in BIRD's sources).  The
server greets with ``0001 BIRD <version> ready.``.

:class:`Control` is the thin asyncio shell (``birdc`` without a process per command: a
``configure`` round trip costs a millisecond, not a process start).  :func:`parse_protocols`
and :func:`parse_bfd_sessions` turn ``show protocols all`` and ``show bfd sessions`` into
values; they never raise on odd text (unknown lines are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

#: Longest reply line we accept (BIRD's own limit is far below).
LINE_LIMIT = 1 << 20


class ControlError(Exception):
    """The control socket could not be reached or broke mid-command."""


@dataclass(frozen=True)
class Reply:
    """One command's reply: ``(code, text)`` per line (continuations carry their code)."""

    lines: tuple[tuple[int, str], ...]

    @property
    def code(self) -> int:
        """The code of the last line: below 8000 is success."""
        return self.lines[-1][0] if self.lines else 0

    @property
    def ok(self) -> bool:
        return self.code < 8000

    @property
    def text(self) -> str:
        return "\n".join(t for _, t in self.lines)


class ReplyReader:
    """Collects lines until a reply is complete (pure)."""

    def __init__(self) -> None:
        self._lines: list[tuple[int, str]] = []
        self._code = 0

    def feed(self, line: str) -> Reply | None:
        """Add one line (without its newline); the whole Reply once its last line arrived."""
        if line.startswith(" "):  # continuation of the previous code
            self._lines.append((self._code, line[1:]))
            return None
        head = line[:4]
        if len(line) >= 5 and head.isdigit() and line[4] in " -":
            self._code = int(head)
            self._lines.append((self._code, line[5:]))
            if line[4] == " ":
                reply, self._lines = Reply(tuple(self._lines)), []
                return reply
            return None
        if line.startswith("+"):  # a spontaneous message (only with `echo`): not part of a reply
            return None
        self._lines.append((self._code, line))
        return None


class Control:
    """A connection to BIRD's control socket; :meth:`command` sends one line, returns its Reply."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> str:
        """Connect and read the greeting; return it (``BIRD 2.0.12 ready.``)."""
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(str(self.path), limit=LINE_LIMIT)
        except OSError as exc:
            raise ControlError(f"cannot connect to {self.path}: {exc.strerror or exc}") from exc
        hello = await self._read_reply()
        return hello.text

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def command(self, text: str, timeout: float = 30.0) -> Reply:
        """Send ``text`` (one line) and wait for the whole reply."""
        async with self._lock:
            if self._writer is None:
                raise ControlError(f"not connected to {self.path}")
            try:
                self._writer.write(text.encode() + b"\n")
                await self._writer.drain()
                return await asyncio.wait_for(self._read_reply(), timeout)
            except (OSError, TimeoutError, ControlError) as exc:
                self.close()
                raise ControlError(f"{text.split()[0]}: control socket failed: {exc}") from exc
            except asyncio.CancelledError:  # the reply may still arrive: this connection is out of step
                self.close()
                raise

    async def _read_reply(self) -> Reply:
        assert self._reader is not None
        reader = ReplyReader()
        while True:
            raw = await self._reader.readline()
            if not raw:
                raise ControlError("BIRD closed the control connection")
            reply = reader.feed(raw.decode(errors="replace").rstrip("\n"))
            if reply is not None:
                return reply

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closing
                self._writer.close()
        self._reader = self._writer = None


# --- parsers --------------------------------------------------------------------------------


@dataclass
class ProtocolState:
    """One protocol from ``show protocols all``."""

    name: str
    proto: str
    state: str  # BIRD's protocol state: up, start, down, flush...
    since: float | None  # epoch seconds of the last state change (timeformat protocol "%s")
    info: str = ""
    description: str = ""
    bgp_state: str = ""  # Established, Active, Connect, Idle, OpenSent, OpenConfirm
    neighbor: str = ""
    last_error: str = ""
    exported: int = 0  # routes exported, summed over channels
    extra: dict[str, str] = field(default_factory=dict)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_protocols(reply: Reply) -> dict[str, ProtocolState]:
    """``show protocols all`` -> protocol name -> state."""
    out: dict[str, ProtocolState] = {}
    cur: ProtocolState | None = None
    for code, text in reply.lines:
        if code == 1002:
            parts = text.split(None, 5)
            if len(parts) < 5:
                cur = None
                continue
            cur = ProtocolState(
                parts[0], parts[1], parts[3], _number(parts[4]), parts[5].strip() if len(parts) > 5 else ""
            )
            out[cur.name] = cur
        elif code == 1006 and cur is not None:
            key, sep, value = text.strip().partition(":")
            if not sep:
                continue
            value = value.strip()
            if key == "BGP state":
                cur.bgp_state = value
            elif key == "Description":
                cur.description = value
            elif key == "Neighbor address":
                cur.neighbor = value
            elif key == "Last error":
                cur.last_error = value
            elif key == "Routes":  # "0 imported, 2 exported, 0 preferred"
                for item in value.split(","):
                    words = item.split()
                    if len(words) == 2 and words[1] == "exported" and words[0].isdigit():
                        cur.exported += int(words[0])
            else:
                cur.extra.setdefault(key, value)
    return out


def parse_bfd_sessions(reply: Reply) -> dict[str, str]:
    """``show bfd sessions`` -> neighbour address -> state (Up, Down, Init, AdminDown)."""
    out: dict[str, str] = {}
    for code, text in reply.lines:
        parts = text.split()
        if code == 1020 and len(parts) >= 3 and parts[0] != "IP" and not parts[0].endswith(":"):
            out[parts[0]] = parts[2]
    return out
