"""Errors raised by :mod:`node.noise`, split by whose fault they are.

::

    NoiseError                        root: ``except NoiseError`` catches everything below
    +-- NoiseProtocolError            a rule of the Noise state machine was broken
    |   +-- LocalProtocolError        by our own caller: wrong turn, payload too long,
    |   |   |                         transport use before the handshake, use after failure
    |   |   +-- UnsupportedProtocolError  unknown pattern, modifier or suite name
    |   +-- RemoteProtocolError       by the peer: message too long or too short, bad key
    |       +-- DecryptError          an AEAD tag did not verify (tampering or wrong keys)
    +-- NonceExhausted                a CipherState used its last nonce (2**64 - 2)

After any ``RemoteProtocolError`` (so also ``DecryptError``) the handshake or connection that
raised it is dead: every later call raises ``LocalProtocolError``. Drop the connection.
"""

from __future__ import annotations


class NoiseError(Exception):
    """Root of every error raised by :mod:`node.noise`."""


class NoiseProtocolError(NoiseError):
    """A rule of the Noise protocol or of this state machine was broken."""


class LocalProtocolError(NoiseProtocolError):
    """Our own side misused the state machine (a bug in the caller, not the peer's fault)."""


class UnsupportedProtocolError(LocalProtocolError, ValueError):
    """The protocol name names a pattern, modifier or crypto suite this package lacks."""


class RemoteProtocolError(NoiseProtocolError):
    """The peer sent bytes that break the protocol; the session must be dropped."""


class DecryptError(RemoteProtocolError):
    """Authenticated decryption failed: the bytes were altered or the keys do not match."""


class NonceExhausted(NoiseError):
    """A CipherState reached nonce 2**64 - 1, which Noise reserves; start a new session."""
