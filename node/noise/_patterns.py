"""Handshake patterns as data, written in the spec's own notation, and protocol-name parsing.

Rules of the table (Noise spec sections 7 and 9):

- Lines before ``...`` are pre-messages (keys each side knows before the handshake: ``->`` the
  initiator's, ``<-`` the responder's). The rest are messages, alternating ``->`` (initiator
  writes) and ``<-`` (responder writes), starting with ``->``.
- Tokens: ``e`` ``s`` (send a public key) and ``ee`` ``es`` ``se`` ``ss`` (mix a DH into the
  chaining key; the first letter is the initiator's key, the second the responder's).
- A one-way pattern (N, K, X) has a single message and its responder only ever receives.
- The ``pskN`` modifier adds a ``psk`` token at the start of the first message (N = 0) or at
  the end of message N; in a psk handshake every ``e`` also calls MixKey.

Every fundamental, deferred and one-way pattern of revision 34 of the spec is listed.
Fallback patterns (``fallback`` modifier) are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from ._cipher import CIPHERS
from ._crypto import CIPHER_NAME, DH_NAME, HASH_NAME
from ._errors import UnsupportedProtocolError

Token = Literal["e", "s", "ee", "es", "se", "ss", "psk"]
_TOKENS = frozenset({"e", "s", "ee", "es", "se", "ss", "psk"})

_TABLE = """
N:
  <- s
  ...
  -> e, es
K:
  -> s
  <- s
  ...
  -> e, es, ss
X:
  <- s
  ...
  -> e, es, s, ss
NN:
  -> e
  <- e, ee
NK:
  <- s
  ...
  -> e, es
  <- e, ee
NX:
  -> e
  <- e, ee, s, es
XN:
  -> e
  <- e, ee
  -> s, se
XK:
  <- s
  ...
  -> e, es
  <- e, ee
  -> s, se
XX:
  -> e
  <- e, ee, s, es
  -> s, se
KN:
  -> s
  ...
  -> e
  <- e, ee, se
KK:
  -> s
  <- s
  ...
  -> e, es, ss
  <- e, ee, se
KX:
  -> s
  ...
  -> e
  <- e, ee, se, s, es
IN:
  -> e, s
  <- e, ee, se
IK:
  <- s
  ...
  -> e, es, s, ss
  <- e, ee, se
IX:
  -> e, s
  <- e, ee, se, s, es
NK1:
  <- s
  ...
  -> e
  <- e, ee, es
NX1:
  -> e
  <- e, ee, s
  -> es
X1N:
  -> e
  <- e, ee
  -> s
  <- se
X1K:
  <- s
  ...
  -> e, es
  <- e, ee
  -> s
  <- se
XK1:
  <- s
  ...
  -> e
  <- e, ee, es
  -> s, se
X1K1:
  <- s
  ...
  -> e
  <- e, ee, es
  -> s
  <- se
X1X:
  -> e
  <- e, ee, s, es
  -> s
  <- se
XX1:
  -> e
  <- e, ee, s
  -> es, s, se
X1X1:
  -> e
  <- e, ee, s
  -> es, s
  <- se
K1N:
  -> s
  ...
  -> e
  <- e, ee
  -> se
K1K:
  -> s
  <- s
  ...
  -> e, es
  <- e, ee
  -> se
KK1:
  -> s
  <- s
  ...
  -> e
  <- e, ee, se, es
K1K1:
  -> s
  <- s
  ...
  -> e
  <- e, ee, es
  -> se
K1X:
  -> s
  ...
  -> e
  <- e, ee, s, es
  -> se
KX1:
  -> s
  ...
  -> e
  <- e, ee, se, s
  -> es
K1X1:
  -> s
  ...
  -> e
  <- e, ee, s
  -> se, es
I1N:
  -> e, s
  <- e, ee
  -> se
I1K:
  <- s
  ...
  -> e, es, s
  <- e, ee
  -> se
IK1:
  <- s
  ...
  -> e, s
  <- e, ee, se, es
I1K1:
  <- s
  ...
  -> e, s
  <- e, ee, es
  -> se
I1X:
  -> e, s
  <- e, ee, s, es
  -> se
IX1:
  -> e, s
  <- e, ee, se, s
  -> es
I1X1:
  -> e, s
  <- e, ee, s
  -> se, es
"""

ONE_WAY = frozenset({"N", "K", "X"})


@dataclass(frozen=True)
class HandshakePattern:
    """One handshake pattern, possibly with psk modifiers applied.

    ``messages[i]`` is written by the initiator when ``i`` is even and by the responder when
    ``i`` is odd.
    """

    name: str
    initiator_pre: tuple[Token, ...]
    responder_pre: tuple[Token, ...]
    messages: tuple[tuple[Token, ...], ...]
    one_way: bool

    @property
    def psk_count(self) -> int:
        """How many ``psk`` tokens the pattern holds (0 outside psk mode)."""
        return sum(m.count("psk") for m in self.messages)

    def with_psks(self, positions: list[int]) -> HandshakePattern:
        """The pattern with ``psk{N}`` modifiers applied for each N in ``positions``."""
        messages = [list(m) for m in self.messages]
        for pos in positions:
            if pos > len(messages):
                raise UnsupportedProtocolError(f"psk{pos} past the last message of {self.name}")
            if pos == 0:
                messages[0].insert(0, "psk")
            else:
                messages[pos - 1].append("psk")
        suffix = "+".join(f"psk{p}" for p in positions)
        return HandshakePattern(
            name=self.name + suffix,
            initiator_pre=self.initiator_pre,
            responder_pre=self.responder_pre,
            messages=tuple(tuple(m) for m in messages),
            one_way=self.one_way,
        )


def _parse_tokens(text: str) -> tuple[Token, ...]:
    tokens = tuple(t.strip() for t in text.split(","))
    unknown = [t for t in tokens if t not in _TOKENS]
    if unknown:
        raise ValueError(f"unknown tokens {unknown}")
    return cast(tuple[Token, ...], tokens)


def _parse_table(table: str) -> dict[str, HandshakePattern]:
    patterns: dict[str, HandshakePattern] = {}
    for block in re.split(r"\n(?=\S)", table.strip()):
        head, *lines = block.splitlines()
        name = head.rstrip(":")
        body = [line.strip() for line in lines]
        if "..." in body:
            cut = body.index("...")
            pre, msgs = body[:cut], body[cut + 1 :]
        else:
            pre, msgs = [], body
        initiator_pre: tuple[Token, ...] = ()
        responder_pre: tuple[Token, ...] = ()
        for line in pre:
            arrow, rest = line.split(" ", 1)
            if arrow == "->":
                initiator_pre = _parse_tokens(rest)
            else:
                responder_pre = _parse_tokens(rest)
        messages = []
        for i, line in enumerate(msgs):
            arrow, rest = line.split(" ", 1)
            if arrow != ("->" if i % 2 == 0 else "<-"):
                raise ValueError(f"{name}: message {i} goes the wrong way")
            messages.append(_parse_tokens(rest))
        patterns[name] = HandshakePattern(
            name, initiator_pre, responder_pre, tuple(messages), name in ONE_WAY
        )
    return patterns


PATTERNS: dict[str, HandshakePattern] = _parse_table(_TABLE)
"""Every supported base pattern by name."""

_NAME_RE = re.compile(r"^([NKXI1]+)((?:[a-z]+[0-9]*)(?:\+[a-z]+[0-9]*)*)?$")


@dataclass(frozen=True)
class ProtocolName:
    """A parsed ``Noise_<pattern>_<dh>_<cipher>_<hash>`` name."""

    full: bytes
    pattern: HandshakePattern
    cipher: str = CIPHER_NAME


def parse_protocol_name(name: str | bytes) -> ProtocolName:
    """Parse and check a protocol name; raise UnsupportedProtocolError for what we lack."""
    text = name.decode("ascii") if isinstance(name, bytes) else name
    parts = text.split("_")
    if len(parts) != 5 or parts[0] != "Noise":
        raise UnsupportedProtocolError(f"not a Noise protocol name: {text!r}")
    _, handshake, dh_name, cipher_name, hash_name = parts
    if (dh_name, hash_name) != (DH_NAME, HASH_NAME) or cipher_name not in CIPHERS:
        raise UnsupportedProtocolError(
            f"only {DH_NAME}_{'/'.join(CIPHERS)}_{HASH_NAME} is supported, not {text!r}"
        )
    match = _NAME_RE.match(handshake)
    if match is None or match.group(1) not in PATTERNS:
        raise UnsupportedProtocolError(f"unsupported handshake pattern {handshake!r}")
    pattern = PATTERNS[match.group(1)]
    if match.group(2):
        positions = []
        for modifier in match.group(2).split("+"):
            psk = re.fullmatch(r"psk([0-9]+)", modifier)
            if psk is None:
                raise UnsupportedProtocolError(f"unsupported modifier {modifier!r}")
            positions.append(int(psk.group(1)))
        pattern = pattern.with_psks(positions)
    return ProtocolName(full=text.encode("ascii"), pattern=pattern, cipher=cipher_name)
