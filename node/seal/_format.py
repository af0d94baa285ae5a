"""The seal format v1: header, key schedule, record nonces, content keys.

A sealed stream is ``header || record_0 || ... || record_{N-1}`` (docs/encryption.md has the
byte table). The header is 100 bytes, big-endian::

    0   8  magic "BCAISEAL"
    8   1  version (1)
    9   1  kdf: 0 = random 256-bit content key, 1 = Argon2id(passphrase)
    10  1  record shift k: records carry 2^k plaintext bytes, 12 <= k <= 22 (default 16)
    11  1  flags (0)
    12  4  Argon2id opslimit (0 when kdf = 0)
    16  4  Argon2id memlimit in KiB (0 when kdf = 0)
    20 16  Argon2id salt (zeros when kdf = 0)
    36 32  stream nonce: random per sealing
    68 32  header MAC: HMAC-SHA256(K_header, bytes 0..67)

Key schedule (HKDF-SHA256, RFC 5869, with the stream nonce as salt)::

    K         = the random content key, or Argon2id(passphrase, salt, opslimit, memlimit)
    PRK       = HMAC(stream nonce, K)
    K_header  = HMAC(PRK, "bcai-seal v1 header" || 0x01)
    K_payload = HMAC(PRK, "bcai-seal v1 payload" || 0x01)

Every sealing draws a new stream nonce, so one content key may seal any number of contents
without a ChaCha20-Poly1305 nonce ever repeating under one payload key. The header MAC commits
to the key (a wrong key or passphrase is told apart from damaged records) and authenticates the
parameters; Argon2id parameters are bounded *before* the KDF runs, so a hostile header cannot
make the reader allocate more than :data:`MAX_MEMLIMIT`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from ._errors import BadKey, MalformedSeal, NotSealed, WrongKey

MAGIC = b"BCAISEAL"
VERSION = 1
HEADER_SIZE = 100
_HEADER_BODY = struct.Struct(">8sBBBBII16s32s")  # the 68 bytes the MAC covers
MAC_SIZE = 32
TAG_SIZE = 16
KEY_SIZE = 32
SALT_SIZE = 16
NONCE_SIZE = 32
TRAILER = struct.Struct(">Q32s")  #: plaintext size, plaintext content root
TRAILER_SIZE = TRAILER.size

KDF_RAW = 0
KDF_ARGON2ID = 1

MIN_RECORD_SHIFT = 12  #: 4 KiB
MAX_RECORD_SHIFT = 22  #: 4 MiB
DEFAULT_RECORD_SHIFT = 16  #: 64 KiB of plaintext per record

#: Argon2id bounds a reader accepts from a header (and a sealer may use).
MIN_OPSLIMIT = 1
MAX_OPSLIMIT = 10
MIN_MEMLIMIT = 8 * 1024  #: libsodium's minimum
MAX_MEMLIMIT = 1 << 30  #: 1 GiB: a hostile header asks for no more
#: Defaults for a passphrase: libsodium's "moderate" (about 0.5 s, 256 MiB).
DEFAULT_OPSLIMIT = 3
DEFAULT_MEMLIMIT = 256 << 20

KEY_PREFIX = "seal1:"
#: media type of sealed content in its manifest (the store and the wire see only this)
SEALED_MEDIA_TYPE = "application/vnd.bcai.sealed"

_LABEL_HEADER = b"bcai-seal v1 header\x01"
_LABEL_PAYLOAD = b"bcai-seal v1 payload\x01"


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


@dataclass(frozen=True, repr=False)
class ContentKey:
    """What opens (or seals) content: a random 256-bit key, or a passphrase.

    A passphrase is stretched with Argon2id under the salt and parameters in each content's
    header (new random salt per sealing). ``repr`` never shows the secret.
    """

    secret: bytes | None = None
    passphrase: bytes | None = None
    opslimit: int = DEFAULT_OPSLIMIT
    memlimit: int = DEFAULT_MEMLIMIT

    def __post_init__(self) -> None:
        if (self.secret is None) == (self.passphrase is None):
            raise BadKey("a content key is either a 32-byte key or a passphrase")
        if self.secret is not None and len(self.secret) != KEY_SIZE:
            raise BadKey(f"a content key has {KEY_SIZE} bytes, not {len(self.secret)}")
        if self.passphrase is not None:
            if not self.passphrase:
                raise BadKey("empty passphrase")
            check_kdf_params(self.opslimit, self.memlimit, error=BadKey)

    def __repr__(self) -> str:
        return "ContentKey(<passphrase>)" if self.passphrase is not None else "ContentKey(<key>)"

    @classmethod
    def generate(cls) -> ContentKey:
        """A new random content key."""
        return cls(secret=secrets.token_bytes(KEY_SIZE))

    @classmethod
    def from_passphrase(
        cls,
        passphrase: str | bytes,
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> ContentKey:
        pw = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
        return cls(passphrase=pw, opslimit=opslimit, memlimit=memlimit)

    @classmethod
    def from_text(cls, text: str) -> ContentKey:
        """Parse ``seal1:<43 base64url characters>`` (what :meth:`text` prints)."""
        text = text.strip()
        if not text.startswith(KEY_PREFIX):
            raise BadKey(f"a content key starts with {KEY_PREFIX!r}")
        body = text[len(KEY_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            raise BadKey("a content key is seal1: followed by base64url") from None
        if len(raw) != KEY_SIZE or len(body) != 43:
            raise BadKey(f"a content key holds {KEY_SIZE} bytes (43 base64url characters)")
        return cls(secret=raw)

    def text(self) -> str:
        """The key as text (``seal1:...``); only for random keys."""
        if self.secret is None:
            raise BadKey("a passphrase has no key text")
        return KEY_PREFIX + base64.urlsafe_b64encode(self.secret).rstrip(b"=").decode()


def check_kdf_params(
    opslimit: int, memlimit: int, *, error: type[Exception] = MalformedSeal
) -> None:
    if not MIN_OPSLIMIT <= opslimit <= MAX_OPSLIMIT:
        raise error(f"Argon2id opslimit {opslimit} outside [{MIN_OPSLIMIT}, {MAX_OPSLIMIT}]")
    if not MIN_MEMLIMIT <= memlimit <= MAX_MEMLIMIT or memlimit % 1024:
        raise error(
            f"Argon2id memlimit {memlimit} bytes outside [{MIN_MEMLIMIT}, {MAX_MEMLIMIT}] "
            "(whole KiB)"
        )


def argon2id(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """The 32-byte key Argon2id derives (parameters checked against the bounds first)."""
    check_kdf_params(opslimit, memlimit)
    import nacl.pwhash.argon2id

    return bytes(
        nacl.pwhash.argon2id.kdf(KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit)
    )


@dataclass(frozen=True)
class Header:
    """A parsed header (not yet authenticated: :func:`open_header` does that)."""

    kdf: int
    record_shift: int
    opslimit: int
    memlimit: int
    salt: bytes
    stream_nonce: bytes
    mac: bytes
    raw: bytes

    @property
    def record_size(self) -> int:
        """Plaintext bytes per record."""
        return 1 << self.record_shift


@dataclass(frozen=True, repr=False)
class Keys:
    header: Header
    payload_key: bytes


def _derive(master: bytes, stream_nonce: bytes) -> tuple[bytes, bytes]:
    prk = _hmac(stream_nonce, master)
    return _hmac(prk, _LABEL_HEADER), _hmac(prk, _LABEL_PAYLOAD)


def new_header(key: ContentKey, *, record_shift: int = DEFAULT_RECORD_SHIFT) -> Keys:
    """A fresh header for sealing under ``key`` (new stream nonce, new salt)."""
    if not MIN_RECORD_SHIFT <= record_shift <= MAX_RECORD_SHIFT:
        raise ValueError(f"record shift {record_shift} outside [12, 22]")
    stream_nonce = os.urandom(NONCE_SIZE)
    if key.passphrase is not None:
        salt = os.urandom(SALT_SIZE)
        kdf, ops, mem = KDF_ARGON2ID, key.opslimit, key.memlimit
        master = argon2id(key.passphrase, salt, ops, mem)
    else:
        assert key.secret is not None
        salt, kdf, ops, mem = bytes(SALT_SIZE), KDF_RAW, 0, 0
        master = key.secret
    body = _HEADER_BODY.pack(
        MAGIC, VERSION, kdf, record_shift, 0, ops, mem // 1024, salt, stream_nonce
    )
    k_header, k_payload = _derive(master, stream_nonce)
    mac = _hmac(k_header, body)
    raw = body + mac
    header = Header(kdf, record_shift, ops, mem, salt, stream_nonce, mac, raw)
    return Keys(header, k_payload)


def parse_header(raw: bytes) -> Header:
    """Parse and bound-check a header; no key needed. Raises NotSealed / MalformedSeal."""
    if len(raw) < len(MAGIC) or bytes(raw[: len(MAGIC)]) != MAGIC:
        raise NotSealed("the content is not encrypted (no bcai seal header)")
    if len(raw) < HEADER_SIZE:
        raise MalformedSeal(f"the seal header is cut short ({len(raw)} of {HEADER_SIZE} bytes)")
    raw = bytes(raw[:HEADER_SIZE])
    _, version, kdf, shift, flags, ops, mem_kib, salt, nonce = _HEADER_BODY.unpack(
        raw[: _HEADER_BODY.size]
    )
    if version != VERSION:
        raise MalformedSeal(f"seal format version {version} is not supported (this bcai reads 1)")
    if flags != 0:
        raise MalformedSeal(f"unknown seal header flags {flags:#x}")
    if not MIN_RECORD_SHIFT <= shift <= MAX_RECORD_SHIFT:
        raise MalformedSeal(f"seal record size 2^{shift} outside 2^12..2^22")
    if kdf == KDF_ARGON2ID:
        check_kdf_params(ops, mem_kib * 1024)
    elif kdf == KDF_RAW:
        if ops or mem_kib or any(salt):
            raise MalformedSeal("a random-key seal header carries KDF parameters")
    else:
        raise MalformedSeal(f"unknown seal KDF {kdf}")
    return Header(kdf, shift, ops, mem_kib * 1024, salt, nonce, raw[_HEADER_BODY.size :], raw)


def open_header(raw: bytes, key: ContentKey) -> Keys:
    """Parse the header and authenticate it under ``key``; WrongKey when it does not."""
    header = parse_header(raw)
    if header.kdf == KDF_ARGON2ID:
        if key.passphrase is not None:
            master = argon2id(key.passphrase, header.salt, header.opslimit, header.memlimit)
        else:
            assert key.secret is not None
            master = key.secret  # the derived key itself
    else:
        if key.passphrase is not None:
            raise WrongKey(
                "this content was encrypted with a random key, not a passphrase: "
                "give its key (--key-file)"
            )
        assert key.secret is not None
        master = key.secret
    k_header, k_payload = _derive(master, header.stream_nonce)
    if not hmac.compare_digest(_hmac(k_header, header.raw[: _HEADER_BODY.size]), header.mac):
        what = "passphrase" if key.passphrase is not None else "key"
        raise WrongKey(f"wrong {what} for this content (its seal header does not authenticate)")
    return Keys(header, k_payload)


def record_nonce(index: int, last: bool) -> bytes:
    """96-bit ChaCha20-Poly1305 nonce: the record index (88 bits, big-endian), last flag."""
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def padded_length(size: int, record_size: int) -> int:
    """Plaintext stream length (data, zero padding, trailer): a whole number of records."""
    return -(-(size + TRAILER_SIZE) // record_size) * record_size


def sealed_size(size: int, record_shift: int = DEFAULT_RECORD_SHIFT) -> int:
    """Bytes of the sealed stream of ``size`` plaintext bytes."""
    records = padded_length(size, 1 << record_shift) >> record_shift
    return HEADER_SIZE + records * ((1 << record_shift) + TAG_SIZE)


# -- key files ---------------------------------------------------------------------------------


def read_key_file(path: str | os.PathLike[str]) -> ContentKey:
    """The content key in ``path`` (one line, ``seal1:...``)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadKey(f"cannot read key file {path}: {getattr(exc, 'strerror', exc)}") from None
    try:
        return ContentKey.from_text(text)
    except BadKey as exc:
        raise BadKey(f"key file {path}: {exc}") from None


def write_key_file(path: str | os.PathLike[str], key: ContentKey) -> None:
    """Create ``path`` (mode 0600, never over an existing file) holding ``key``."""
    data = (key.text() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
