"""NoiseConnection: the project's session, ``Noise_XX_25519_ChaChaPoly_SHA256``, sans-IO.

Lifecycle (one object per TCP connection; the transport layer moves the bytes)::

    HANDSHAKE --(last handshake message written or read)--> TRANSPORT
        |                                                      |
        +--(a read fails: bad tag, bad length, bad key)--------+--> BROKEN

XX runs ``-> e``, ``<- e, ee, s, es``, ``-> s, se``: the initiator writes messages 1 and 3,
the responder message 2. Message 1's payload is sent in clear; message 2's is encrypted but
its recipient is not yet authenticated; message 3's is fully protected.

In BROKEN every call raises LocalProtocolError: a failed decryption means the byte stream was
tampered with or desynchronised, so the connection must be dropped, never retried.
Length framing (2-byte big-endian prefix) belongs to the transport, not to this class.
"""

from __future__ import annotations

from ._cipher import Buffer, CipherState
from ._crypto import MAX_MESSAGE_LEN, MAX_PLAINTEXT_LEN, KeyPair
from ._errors import LocalProtocolError, NoiseError, RemoteProtocolError
from ._handshake import HandshakeState

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
"""The only protocol a NoiseConnection speaks."""
DEFAULT_PROLOGUE = b"bcai/1"
"""The project's prologue; both sides must use the same one or the handshake fails."""


class NoiseConnection:
    """One end of an XX session: handshake messages first, then transport messages."""

    __slots__ = ("_broken", "_handshake", "_handshake_hash", "_recv", "_remote_static", "_send")

    def __init__(self, handshake: HandshakeState) -> None:
        """Wrap a HandshakeState; use :meth:`initiator` or :meth:`responder` instead."""
        self._handshake: HandshakeState | None = handshake
        self._send: CipherState | None = None
        self._recv: CipherState | None = None
        self._handshake_hash: bytes | None = None
        self._remote_static: bytes | None = None
        self._broken = False

    @classmethod
    def initiator(cls, static: KeyPair, *, prologue: bytes = DEFAULT_PROLOGUE) -> NoiseConnection:
        """The side that opened the TCP connection; it writes the first message."""
        return cls(HandshakeState(PROTOCOL_NAME, initiator=True, prologue=prologue, s=static))

    @classmethod
    def responder(cls, static: KeyPair, *, prologue: bytes = DEFAULT_PROLOGUE) -> NoiseConnection:
        """The side that accepted the TCP connection; it reads the first message."""
        return cls(HandshakeState(PROTOCOL_NAME, initiator=False, prologue=prologue, s=static))

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
            raise LocalProtocolError("handshake already complete")
        return self._handshake

    def write_handshake(self, payload: Buffer = b"") -> bytes:
        """The next handshake message to send (LocalProtocolError if it is not our turn)."""
        handshake = self._live_handshake()
        try:
            message = handshake.write_message(bytes(payload))
        except NoiseError:
            self._broken = handshake.failed
            raise
        self._maybe_finish(handshake)
        return message

    def read_handshake(self, message: Buffer) -> bytes:
        """Absorb the peer's handshake message and return its decrypted payload.

        Raises RemoteProtocolError or DecryptError if the message is bad; the connection is
        then broken.
        """
        handshake = self._live_handshake()
        try:
            payload = handshake.read_message(message)
        except NoiseError:
            self._broken = handshake.failed
            raise
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
        send = self._send
        if send is None or self._broken:
            raise LocalProtocolError(
                "connection is broken; drop it" if self._broken else "handshake not complete"
            )
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(f"plaintext longer than {MAX_PLAINTEXT_LEN} bytes")
        return send.encrypt_with_ad(b"", plaintext)

    def decrypt(self, ciphertext: Buffer) -> bytes:
        """The plaintext of one transport message.

        Raises DecryptError on a bad tag and RemoteProtocolError on a message longer than
        65535 bytes; the connection is then broken and must be dropped.
        """
        recv = self._recv
        if recv is None or self._broken:
            raise LocalProtocolError(
                "connection is broken; drop it" if self._broken else "handshake not complete"
            )
        try:
            if len(ciphertext) > MAX_MESSAGE_LEN:
                raise RemoteProtocolError(f"transport message longer than {MAX_MESSAGE_LEN}")
            return recv.decrypt_with_ad(b"", ciphertext)
        except RemoteProtocolError:
            self._broken = True
            raise

    def encrypt_into(self, plaintext: Buffer, out: Buffer) -> int:
        """:meth:`encrypt` into a preallocated ``out`` (>= len + 16 bytes); return the length."""
        send = self._send
        if send is None or self._broken:
            raise LocalProtocolError(
                "connection is broken; drop it" if self._broken else "handshake not complete"
            )
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise LocalProtocolError(f"plaintext longer than {MAX_PLAINTEXT_LEN} bytes")
        return send.encrypt_into(b"", plaintext, out)

    def decrypt_into(self, ciphertext: Buffer, out: Buffer) -> int:
        """:meth:`decrypt` into a preallocated ``out`` (>= len - 16 bytes); return the length.

        Same failure rules as :meth:`decrypt`: a bad tag or an oversized message breaks the
        connection (and ``out`` holds garbage).
        """
        recv = self._recv
        if recv is None or self._broken:
            raise LocalProtocolError(
                "connection is broken; drop it" if self._broken else "handshake not complete"
            )
        try:
            if len(ciphertext) > MAX_MESSAGE_LEN:
                raise RemoteProtocolError(f"transport message longer than {MAX_MESSAGE_LEN}")
            return recv.decrypt_into(b"", ciphertext, out)
        except RemoteProtocolError:
            self._broken = True
            raise

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
