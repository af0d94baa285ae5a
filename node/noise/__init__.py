"""Noise Protocol Framework, sans-IO (suite ``25519_ChaChaPoly_SHA256``).

X25519 on PyNaCl (libsodium), ChaCha20-Poly1305 on ``cryptography`` (OpenSSL), SHA-256 on
hashlib.

Layout:

- ``_errors``      the error tree (local vs remote fault)
- ``_crypto``      X25519, SHA-256, HKDF, :class:`KeyPair`, size constants
- ``_cipher``      :class:`CipherState` (ChaCha20-Poly1305 on OpenSSL, Noise nonces, rekey)
- ``_symmetric``   :class:`SymmetricState`
- ``_patterns``    handshake patterns as data, protocol-name parsing
- ``_handshake``   :class:`HandshakeState` for any supported pattern
- ``_connection``  :class:`NoiseConnection`, the project's XX session

Nothing here touches a socket; ``node.transport`` moves the bytes and adds length framing.
See docs/noise.md.
"""

from ._cipher import CipherState as CipherState
from ._connection import DEFAULT_PROLOGUE as DEFAULT_PROLOGUE
from ._connection import PROTOCOL_NAME as PROTOCOL_NAME
from ._connection import NoiseConnection as NoiseConnection
from ._crypto import MAX_MESSAGE_LEN as MAX_MESSAGE_LEN
from ._crypto import MAX_PLAINTEXT_LEN as MAX_PLAINTEXT_LEN
from ._crypto import KeyPair as KeyPair
from ._errors import DecryptError as DecryptError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import NoiseError as NoiseError
from ._errors import NoiseProtocolError as NoiseProtocolError
from ._errors import NonceExhausted as NonceExhausted
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import UnsupportedProtocolError as UnsupportedProtocolError
from ._handshake import HandshakeState as HandshakeState
from ._patterns import PATTERNS as PATTERNS
from ._patterns import HandshakePattern as HandshakePattern
from ._symmetric import SymmetricState as SymmetricState

__all__ = [
    "DEFAULT_PROLOGUE",
    "MAX_MESSAGE_LEN",
    "MAX_PLAINTEXT_LEN",
    "PATTERNS",
    "PROTOCOL_NAME",
    "CipherState",
    "DecryptError",
    "HandshakePattern",
    "HandshakeState",
    "KeyPair",
    "LocalProtocolError",
    "NoiseConnection",
    "NoiseError",
    "NoiseProtocolError",
    "NonceExhausted",
    "RemoteProtocolError",
    "SymmetricState",
    "UnsupportedProtocolError",
]
