"""HandshakeState (Noise spec section 5.3), driven by the pattern tables in ``_patterns``.

Turn rules: message ``i`` of the pattern is written by the initiator when ``i`` is even and by
the responder when it is odd. Calling the wrong method for the turn raises LocalProtocolError
and changes nothing. A read that fails for any reason (bad tag, bad length, bad key) leaves the
state dead: it fails closed and every later call raises LocalProtocolError. After the last
message the state holds the two transport CipherStates (:attr:`HandshakeState.ciphers`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._cipher import CipherState
from ._crypto import DHLEN, MAX_MESSAGE_LEN, TAGLEN, KeyPair, dh
from ._errors import LocalProtocolError, NoiseError, RemoteProtocolError
from ._patterns import HandshakePattern, Token, parse_protocol_name
from ._symmetric import SymmetricState

PSKLEN = 32


class HandshakeState:
    """One side of a Noise handshake, for any pattern in ``_patterns.PATTERNS``.

    Args:
        protocol_name: e.g. ``"Noise_XX_25519_ChaChaPoly_SHA256"``.
        initiator: which side this is.
        prologue: data both sides must agree on; mixed into the handshake hash.
        s: our static key pair, if the pattern uses one.
        rs: the peer's static public key, if the pattern has it as a pre-message.
        psks: the pre-shared keys (32 bytes each), in the order the pattern uses them.
        e: a fixed ephemeral key pair. FOR TEST VECTORS ONLY: reusing an ephemeral key
            destroys the handshake's security. Normally left None (fresh from os.urandom).
        re: the peer's ephemeral public key, only for patterns with an ``e`` pre-message.
    """

    def __init__(
        self,
        protocol_name: str | bytes,
        *,
        initiator: bool,
        prologue: bytes = b"",
        s: KeyPair | None = None,
        rs: bytes | None = None,
        psks: Sequence[bytes] = (),
        e: KeyPair | None = None,
        re: bytes | None = None,
    ) -> None:
        parsed = parse_protocol_name(protocol_name)
        pattern = parsed.pattern
        self._pattern: HandshakePattern = pattern
        self._initiator = initiator
        self._s = s
        self._e = e
        self._rs = None if rs is None else bytes(rs)
        self._re = None if re is None else bytes(re)
        self._psks = [bytes(p) for p in psks]
        self._psk_mode = pattern.psk_count > 0
        self._index = 0
        self._dead = False
        self._ciphers: tuple[CipherState, CipherState] | None = None
        self._check_inputs()

        self._symmetric = SymmetricState(parsed.full, parsed.cipher)
        self._symmetric.mix_hash(bytes(prologue))
        for side_is_initiator, pre in (
            (True, pattern.initiator_pre),
            (False, pattern.responder_pre),
        ):
            ours = side_is_initiator == initiator
            for token in pre:
                if token == "s":
                    self._symmetric.mix_hash(self._public("s", ours))
                else:  # "e"
                    public = self._public("e", ours)
                    self._symmetric.mix_hash(public)
                    if self._psk_mode:
                        self._symmetric.mix_key(public)

    # -- set-up checks ----------------------------------------------------------------

    def _public(self, which: str, ours: bool) -> bytes:
        if ours:
            key_pair = self._s if which == "s" else self._e
            assert key_pair is not None  # _check_inputs
            return key_pair.public
        public = self._rs if which == "s" else self._re
        assert public is not None  # _check_inputs
        return public

    def _check_inputs(self) -> None:
        pattern = self._pattern
        me_init = self._initiator
        our_pre = pattern.initiator_pre if me_init else pattern.responder_pre
        their_pre = pattern.responder_pre if me_init else pattern.initiator_pre
        needs_s = "s" in our_pre or any(
            "s" in msg for i, msg in enumerate(pattern.messages) if (i % 2 == 0) == me_init
        )
        if needs_s and self._s is None:
            raise LocalProtocolError(f"{pattern.name} needs our static key pair (s)")
        if "s" in their_pre and self._rs is None:
            raise LocalProtocolError(f"{pattern.name} needs the peer's static key (rs)")
        if "e" in our_pre and self._e is None:
            raise LocalProtocolError(f"{pattern.name} needs our ephemeral pre-message key")
        if "e" in their_pre and self._re is None:
            raise LocalProtocolError(f"{pattern.name} needs the peer's ephemeral key (re)")
        if len(self._psks) != pattern.psk_count:
            raise LocalProtocolError(
                f"{pattern.name} uses {pattern.psk_count} psks, {len(self._psks)} given"
            )
        if any(len(p) != PSKLEN for p in self._psks):
            raise LocalProtocolError(f"every psk must be {PSKLEN} bytes")
        if self._rs is not None and len(self._rs) != DHLEN:
            raise LocalProtocolError(f"rs must be {DHLEN} bytes")

    # -- public state -------------------------------------------------------------------

    @property
    def pattern(self) -> HandshakePattern:
        """The pattern being run (with psk modifiers applied)."""
        return self._pattern

    @property
    def initiator(self) -> bool:
        """Whether this side is the initiator."""
        return self._initiator

    @property
    def is_our_turn(self) -> bool:
        """True when the next call must be :meth:`write_message`."""
        return not self.complete and not self._dead and (self._index % 2 == 0) == self._initiator

    @property
    def complete(self) -> bool:
        """True once the last message was written or read."""
        return self._ciphers is not None

    @property
    def failed(self) -> bool:
        """True once a read failed; the handshake cannot go on."""
        return self._dead

    @property
    def message_index(self) -> int:
        """How many handshake messages have been processed."""
        return self._index

    @property
    def handshake_hash(self) -> bytes:
        """``h``: the channel-binding value once complete (the running hash before)."""
        return self._symmetric.get_handshake_hash()

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key, once known."""
        return self._rs

    @property
    def remote_ephemeral(self) -> bytes | None:
        """The peer's ephemeral public key, once known."""
        return self._re

    @property
    def ciphers(self) -> tuple[CipherState, CipherState]:
        """``(c1, c2)`` from Split: initiator-to-responder, responder-to-initiator."""
        if self._ciphers is None:
            raise LocalProtocolError("handshake not complete")
        return self._ciphers

    # -- messages -----------------------------------------------------------------------

    def _check_turn(self, writing: bool) -> tuple[Token, ...]:
        if self._dead:
            raise LocalProtocolError("handshake failed earlier; start a new one")
        if self._ciphers is not None:
            raise LocalProtocolError("handshake already complete")
        if writing != ((self._index % 2 == 0) == self._initiator):
            verb = "read" if writing else "write"
            raise LocalProtocolError(f"out of turn: message {self._index} is ours to {verb}")
        return self._pattern.messages[self._index]

    def _overhead(self, tokens: tuple[Token, ...]) -> int:
        """Bytes a message adds around its payload, given the keys mixed in so far."""
        keyed = self._symmetric.has_key()
        total = 0
        for token in tokens:
            if token == "e":
                total += DHLEN
                keyed = keyed or self._psk_mode
            elif token == "s":
                total += DHLEN + (TAGLEN if keyed else 0)
            else:  # a DH or psk token mixes a key in
                keyed = True
        return total + (TAGLEN if keyed else 0)

    def _mix_dh(self, token: Token) -> None:
        init = self._initiator
        if token == "ee":
            ours, theirs = self._e, self._re
        elif token == "es":
            ours, theirs = (self._e, self._rs) if init else (self._s, self._re)
        elif token == "se":
            ours, theirs = (self._s, self._re) if init else (self._e, self._rs)
        else:  # "ss"
            ours, theirs = self._s, self._rs
        if ours is None or theirs is None:  # the pattern tables make this unreachable
            raise LocalProtocolError(f"token {token} before its keys are known")
        self._symmetric.mix_key(dh(ours, theirs))

    def _next_psk(self) -> bytes:
        return self._psks.pop(0)

    def write_message(self, payload: bytes = b"") -> bytes:
        """WriteMessage(payload): the next handshake message, at most 65535 bytes.

        Raises LocalProtocolError, leaving the state unchanged, when it is not our turn or the
        message would be too long.
        """
        tokens = self._check_turn(writing=True)
        payload = bytes(payload)
        if self._overhead(tokens) + len(payload) > MAX_MESSAGE_LEN:
            raise LocalProtocolError(f"handshake message would exceed {MAX_MESSAGE_LEN} bytes")
        try:
            out = bytearray()
            sym = self._symmetric
            for token in tokens:
                if token == "e":
                    if self._e is None:
                        self._e = KeyPair.generate()
                    out += self._e.public
                    sym.mix_hash(self._e.public)
                    if self._psk_mode:
                        sym.mix_key(self._e.public)
                elif token == "s":
                    assert self._s is not None  # _check_inputs
                    out += sym.encrypt_and_hash(self._s.public)
                elif token == "psk":
                    sym.mix_key_and_hash(self._next_psk())
                else:
                    self._mix_dh(token)
            out += sym.encrypt_and_hash(payload)
        except NoiseError:
            self._dead = True
            raise
        self._advance()
        return bytes(out)

    def read_message(self, message: bytes | bytearray | memoryview) -> bytes:
        """ReadMessage(message): check and absorb the peer's message, return its payload.

        Raises LocalProtocolError (state unchanged) when it is our turn to write. Raises
        RemoteProtocolError or DecryptError when the message is malformed or was tampered
        with; the state is then dead.
        """
        tokens = self._check_turn(writing=False)
        try:
            return self._read(tokens, memoryview(message).cast("B"))
        except NoiseError:
            self._dead = True
            raise

    def _read(self, tokens: tuple[Token, ...], message: memoryview) -> bytes:
        if len(message) > MAX_MESSAGE_LEN:
            raise RemoteProtocolError(f"handshake message longer than {MAX_MESSAGE_LEN} bytes")
        if len(message) < self._overhead(tokens):
            raise RemoteProtocolError("handshake message too short")
        sym = self._symmetric
        pos = 0
        for token in tokens:
            if token == "e":
                self._re = bytes(message[pos : pos + DHLEN])
                pos += DHLEN
                sym.mix_hash(self._re)
                if self._psk_mode:
                    sym.mix_key(self._re)
            elif token == "s":
                end = pos + DHLEN + (TAGLEN if sym.has_key() else 0)
                self._rs = sym.decrypt_and_hash(bytes(message[pos:end]))
                pos = end
            elif token == "psk":
                sym.mix_key_and_hash(self._next_psk())
            else:
                self._mix_dh(token)
        payload = sym.decrypt_and_hash(bytes(message[pos:]))
        self._advance()
        return payload

    def _advance(self) -> None:
        self._index += 1
        if self._index == len(self._pattern.messages):
            self._ciphers = self._symmetric.split()
            self._e = None  # drop the ephemeral private key with the handshake
