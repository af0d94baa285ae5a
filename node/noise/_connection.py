"""NoiseConnection: the project's session, ``Noise_XX_25519_{AESGCM,ChaChaPoly}_SHA256``, sans-IO.

Lifecycle (one object per TCP connection; the transport layer moves the bytes)::

    HANDSHAKE --(last handshake message written or read)--> TRANSPORT
        |                                                      |
        +--(a read fails: bad tag, bad length, bad key)--------+--> BROKEN

XX runs ``-> e``, ``<- e, ee, s, es``, ``-> s, se``: the initiator writes messages 1 and 3,
the responder message 2. Message 1's payload is sent in clear; message 2's is encrypted but
its recipient is not yet authenticated; message 3's is fully protected.

Cipher negotiation (docs/protocol.md section 2). ChaChaPoly is what every peer speaks;
AES-256-GCM is ~2-5x faster where the CPU has AES instructions, so it is offered in message 1,
whose payload is otherwise empty: the payload is the list of *extra* ciphers the initiator
accepts, one id byte each in its order of preference (``0x02`` = AESGCM; unknown ids are
ignored). The responder picks the first offered cipher it also runs (else ChaChaPoly) and runs
``Noise_XX_25519_<that>_SHA256`` from message 1 on. The initiator cannot know which: it writes
message 1 with one HandshakeState per cipher it offers, sharing the ephemeral key (message 1,
``e`` and a clear payload, is the same bytes in each), and opens message 2 with each in turn
(AESGCM first; one extra tag check on ~100 bytes when the answer is ChaChaPoly). The offer is
mixed into ``h`` in every state, so a man in the middle who strips or alters it makes message
2's tag fail (the connection breaks) instead of downgrading it. A responder that predates the
offer ignores the payload and runs ChaChaPoly, which the initiator accepts.

In BROKEN every call raises LocalProtocolError: a failed decryption means the byte stream was
tampered with or desynchronised, so the connection must be dropped, never retried.
Length framing (2-byte big-endian prefix) belongs to the transport, not to this class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._cipher import AESGCM, CHACHAPOLY, Buffer, CipherState
from ._crypto import DHLEN, MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN, KeyPair
from ._errors import LocalProtocolError, NoiseError, RemoteProtocolError
from ._handshake import HandshakeState

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
"""The protocol every peer speaks (the fallback of the cipher negotiation)."""
OFFER_IDS: dict[str, int] = {AESGCM: 0x02}
"""Message-1 offer byte of each negotiable cipher (ChaChaPoly, always accepted, has none)."""
_BY_ID = {v: k for k, v in OFFER_IDS.items()}
MAX_OFFER = 16
"""Offer bytes a responder looks at (the rest of a longer message-1 payload is ignored)."""


def protocol_name(cipher: str) -> bytes:
    return f"Noise_XX_25519_{cipher}_SHA256".encode()


def _cpu_has_aes() -> bool:
    """AES and carry-less multiply in the CPU (Linux /proc/cpuinfo; elsewhere: assume not)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"aes", "pclmulqdq"} <= flags
    except OSError:
        pass
    return False


def local_ciphers() -> tuple[str, ...]:
    """The ciphers this process runs, in order of preference: AESGCM first where the CPU has
    AES instructions (without them ChaChaPoly is the faster one), ChaChaPoly always last.
    ``BCAI_NOISE_CIPHERS`` (comma-separated names) overrides, e.g. ``ChaChaPoly`` alone."""
    forced = os.environ.get("BCAI_NOISE_CIPHERS")
    if forced:
        names = [n.strip() for n in forced.split(",") if n.strip() in OFFER_IDS]
        return (*names, CHACHAPOLY)
    return (AESGCM, CHACHAPOLY) if _cpu_has_aes() else (CHACHAPOLY,)


DEFAULT_PROLOGUE = b"bcai/1"
"""The project's prologue; both sides must use the same one or the handshake fails."""


class NoiseConnection:
    """One end of an XX session: handshake messages first, then transport messages."""

    __slots__ = (
        "_alternates",
        "_broken",
        "_ciphers",
        "_handshake",
        "_handshake_hash",
        "_offer",
        "_prologue",
        "_recv",
        "_remote_static",
        "_send",
        "_static",
        "cipher",
    )

    def __init__(self, handshake: HandshakeState | None) -> None:
        """Wrap a HandshakeState; use :meth:`initiator` or :meth:`responder` instead."""
        self._handshake: HandshakeState | None = handshake
        self._alternates: list[tuple[str, HandshakeState]] = []
        self._offer: bytes | None = None
        self._static: KeyPair | None = None
        self._prologue = b""
        self._ciphers: tuple[str, ...] = (CHACHAPOLY,)
        self._send: CipherState | None = None
        self._recv: CipherState | None = None
        self._handshake_hash: bytes | None = None
        self._remote_static: bytes | None = None
        self._broken = False
        #: the session's cipher (``"AESGCM"`` or ``"ChaChaPoly"``), known to the responder
        #: after message 1 and to the initiator after message 2
        self.cipher: str | None = None

    @classmethod
    def initiator(
        cls,
        static: KeyPair,
        *,
        prologue: bytes = DEFAULT_PROLOGUE,
        ciphers: Sequence[str] | None = None,
    ) -> NoiseConnection:
        """The side that opened the TCP connection; it writes the first message, offering
        ``ciphers`` (default :func:`local_ciphers`; ChaChaPoly is always accepted)."""
        order = _order(ciphers)
        e = KeyPair.generate()
        states = [
            (c, HandshakeState(protocol_name(c), initiator=True, prologue=prologue, s=static, e=e))
            for c in order
        ]
        conn = cls(states[0][1])
        conn._alternates = states[1:]
        conn._offer = bytes(OFFER_IDS[c] for c in order if c in OFFER_IDS)
        conn._ciphers = order
        if len(order) == 1:
            conn.cipher = order[0]
        return conn

    @classmethod
    def responder(
        cls,
        static: KeyPair,
        *,
        prologue: bytes = DEFAULT_PROLOGUE,
        ciphers: Sequence[str] | None = None,
    ) -> NoiseConnection:
        """The side that accepted the TCP connection; it reads the first message and answers
        in the first cipher of the initiator's offer that is in ``ciphers`` (default
        :func:`local_ciphers`), else ChaChaPoly."""
        conn = cls(None)
        conn._static = static
        conn._prologue = prologue
        conn._ciphers = _order(ciphers)
        return conn

    # -- state --------------------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        """True once the handshake is done and transport messages may flow."""
        return self._send is not None and not self._broken

    @property
    def is_our_turn(self) -> bool:
        """During the handshake: True when the next call must be :meth:`write_handshake`."""
        return self._handshake is not None and self._handshake.is_our_turn

    @property
    def broken(self) -> bool:
        """True after a failed read; the connection must be dropped."""
        return self._broken

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static X25519 public key, once the handshake has revealed it.

        In XX the initiator learns it from message 2, the responder from message 3. It is
        only authenticated once the handshake is complete.
        """
        if self._handshake is not None:
            return self._handshake.remote_static
        return self._remote_static

    @property
    def handshake_hash(self) -> bytes:
        """The final handshake hash (channel binding); LocalProtocolError before completion."""
        if self._handshake_hash is None:
            raise LocalProtocolError("handshake not complete")
        return self._handshake_hash

    # -- handshake ----------------------------------------------------------------------

    def _live_handshake(self) -> HandshakeState:
        if self._broken:
            raise LocalProtocolError("connection is broken; drop it")
        if self._handshake is None:
            if self._static is not None:
                raise LocalProtocolError("the responder reads the first message")
            raise LocalProtocolError("handshake already complete")
        return self._handshake

    def write_handshake(self, payload: Buffer = b"") -> bytes:
        """The next handshake message to send (LocalProtocolError if it is not our turn).

        Message 1's payload is the cipher offer: the caller's must be empty."""
        handshake = self._live_handshake()
        offer, self._offer = self._offer, None
        if offer:
            if payload:
                raise LocalProtocolError(
                    "message 1 carries the cipher offer: no payload (or offer one cipher)"
                )
            payload = offer
        try:
            message = handshake.write_message(bytes(payload))
            for _, alternate in self._alternates:
                if alternate.write_message(bytes(payload)) != message:
                    raise LocalProtocolError("message 1 differs between ciphers")
        except NoiseError:
            self._broken = handshake.failed
            raise
        self._maybe_finish(handshake)
        return message

    def _start_responder(self, message: Buffer) -> HandshakeState:
        """Message 1 arrived: pick the cipher from its offer and start the handshake."""
        assert self._static is not None
        offered = bytes(message[DHLEN : DHLEN + MAX_OFFER])
        cipher = next(
            (c for c in (_BY_ID.get(b) for b in offered) if c and c in self._ciphers),
            CHACHAPOLY,
        )
        self.cipher = cipher
        self._handshake = HandshakeState(
            protocol_name(cipher), initiator=False, prologue=self._prologue, s=self._static
        )
        self._static = None
        return self._handshake

    def read_handshake(self, message: Buffer) -> bytes:
        """Absorb the peer's handshake message and return its decrypted payload.

        Raises RemoteProtocolError or DecryptError if the message is bad; the connection is
        then broken.
        """
        if self._handshake is None and self._static is not None and not self._broken:
            self._start_responder(message)
        handshake = self._live_handshake()
        alternates, self._alternates = self._alternates, []
        try:
            payload = handshake.read_message(message)
            if alternates:
                self.cipher = self._ciphers[0]
        except NoiseError as first:
            # Message 2 of an initiator that offered ciphers: the responder may have answered
            # in another one (or predates the offer): try each state in turn.
            for cipher, alternate in alternates:
                try:
                    payload = alternate.read_message(message)
                except NoiseError:
                    continue
                self._handshake = handshake = alternate
                self.cipher = cipher
                break
            else:
                self._broken = handshake.failed
                raise first from None
        self._maybe_finish(handshake)
        return payload

    def _maybe_finish(self, handshake: HandshakeState) -> None:
        if not handshake.complete:
            return
        c1, c2 = handshake.ciphers
        self._send, self._recv = (c1, c2) if handshake.initiator else (c2, c1)
        self._handshake_hash = handshake.handshake_hash
        self._remote_static = handshake.remote_static
        self._handshake = None

    # -- transport ----------------------------------------------------------------------

    def encrypt(self, plaintext: Buffer) -> bytes:
        """One transport message for at most 65519 bytes of plaintext."""
        send = self._transport(self._send)
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(f"plaintext longer than {MAX_PLAINTEXT_LEN} bytes")
        return send.encrypt_with_ad(b"", plaintext)

    def decrypt(self, ciphertext: Buffer) -> bytes:
        """The plaintext of one transport message.

        Raises DecryptError on a bad tag and RemoteProtocolError on a message longer than
        65535 bytes; the connection is then broken and must be dropped.
        """
        recv = self._transport(self._recv)
        try:
            if len(ciphertext) > MAX_MESSAGE_LEN:
                raise RemoteProtocolError(f"transport message longer than {MAX_MESSAGE_LEN}")
            return recv.decrypt_with_ad(b"", ciphertext)
        except RemoteProtocolError:
            self._broken = True
            raise

    def encrypt_into(self, plaintext: Buffer, out: Buffer) -> int:
        """:meth:`encrypt` into a preallocated ``out`` (>= len + 16 bytes); return the length."""
        send = self._transport(self._send)
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(f"plaintext longer than {MAX_PLAINTEXT_LEN} bytes")
        return send.encrypt_into(b"", plaintext, out)

    def encrypt_many_into(self, plaintexts: Sequence[Buffer], out: Buffer, gap: int = 0) -> int:
        """:meth:`encrypt_into` of several transport messages in order, each ciphertext after
        ``gap`` bytes the caller fills (CipherState.encrypt_many_into); returns the bytes."""
        send = self._transport(self._send)
        for p in plaintexts:
            if len(p) > MAX_PLAINTEXT_LEN:
                raise LocalProtocolError(f"plaintext longer than {MAX_PLAINTEXT_LEN} bytes")
        return send.encrypt_many_into(b"", plaintexts, out, gap)

    def decrypt_into(self, ciphertext: Buffer, out: Buffer) -> int:
        """:meth:`decrypt` into a preallocated ``out`` (>= len - 16 bytes); return the length.

        Same failure rules as :meth:`decrypt`: a bad tag or an oversized message breaks the
        connection (and ``out`` holds garbage).
        """
        return self.decrypt_many_into((ciphertext,), out)

    def decrypt_many_into(self, ciphertexts: Sequence[Buffer], out: Buffer) -> int:
        """:meth:`decrypt_into` of several transport messages in order, their plaintexts
        back to back in ``out``; returns the bytes written. Same failure rules (a bad tag or
        an oversized message breaks the connection)."""
        recv = self._transport(self._recv)
        try:
            for c in ciphertexts:
                if len(c) > MAX_MESSAGE_LEN:
                    raise RemoteProtocolError(f"transport message longer than {MAX_MESSAGE_LEN}")
            return recv.decrypt_many_into(b"", ciphertexts, out)
        except RemoteProtocolError:
            self._broken = True
            raise

    def _transport(self, state: CipherState | None) -> CipherState:
        """``state`` (a transport CipherState), or why it cannot be used."""
        if state is None or self._broken:
            raise LocalProtocolError(
                "connection is broken; drop it" if self._broken else "handshake not complete"
            )
        return state

    def rekey_outgoing(self) -> None:
        """Rekey our sending CipherState; the peer must call :meth:`rekey_incoming` in step."""
        if self._send is None or self._broken:
            raise LocalProtocolError("no transport keys")
        self._send.rekey()

    def rekey_incoming(self) -> None:
        """Rekey our receiving CipherState, at the point the peer rekeyed its sending one."""
        if self._recv is None or self._broken:
            raise LocalProtocolError("no transport keys")
        self._recv.rekey()

    def _set_nonces_for_testing(self, send: int | None = None, recv: int | None = None) -> None:
        """Test hook: move the transport nonce counters (never use outside tests)."""
        if self._send is None or self._recv is None:
            raise LocalProtocolError("handshake not complete")
        if send is not None:
            self._send.set_nonce(send)
        if recv is not None:
            self._recv.set_nonce(recv)


def _order(ciphers: Sequence[str] | None) -> tuple[str, ...]:
    """``ciphers`` (default :func:`local_ciphers`) deduplicated, ChaChaPoly moved last."""
    chosen = local_ciphers() if ciphers is None else tuple(ciphers)
    for c in chosen:
        if c not in OFFER_IDS and c != CHACHAPOLY:
            raise LocalProtocolError(f"unknown cipher {c!r}")
    extra = tuple(dict.fromkeys(c for c in chosen if c != CHACHAPOLY))
    return (*extra, CHACHAPOLY)
