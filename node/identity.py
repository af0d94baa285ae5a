"""The node's identity: an Ethereum account and a Noise static key, both encrypted at rest.

``<data dir>/keystore/`` holds:

- ``account.json``: a Web3 Secret Storage (v3) keystore made by ``eth_account.Account.encrypt``
  (scrypt); the account signs receipts and the Noise identity binding.
- ``noise.json``: the X25519 static key for ``Noise_XX``, sealed with ``nacl.secret.SecretBox``
  under a key derived from the same passphrase with argon2id (``nacl.pwhash.argon2id``). It
  records the account address it belongs to and its public key in clear.

The account key is used without eth-account on the data plane (:class:`KeyAccount`,
:func:`sign_digest`, :func:`recover_address`, :func:`decrypt_keystore`: libsecp256k1 through
``coincurve``, keccak through ``eth_hash``, the v3 keystore's scrypt and AES-128-CTR through
``hashlib`` and ``cryptography``): eth-account, eth-utils and what they import (pydantic,
py_ecc) cost ~20 MiB of every node's memory and ~1 s of its start-up. A ``KeyAccount`` builds
an eth-account ``LocalAccount`` on first use of anything else (the chain client signs
transactions with it).

The KDFs cost about a second by design. Tests and local demos may set
``BCAI_INSECURE_FAST_KDF=1`` (or pass ``fast_kdf=True``) to use minimal KDF parameters: never
for a key that guards anything. Passphrases are never logged.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.secret
import nacl.utils
from eth_hash.auto import keccak

from node._fs import atomic_write
from node.log import get_logger

if TYPE_CHECKING:  # eth_account takes a second to import: only the functions that need it do
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

    _AccountBase = LocalAccount
else:
    _AccountBase = object

log = get_logger(__name__)

KEYSTORE_DIR = "keystore"
ACCOUNT_FILE = "account.json"
NOISE_FILE = "noise.json"
FAST_KDF_ENV = "BCAI_INSECURE_FAST_KDF"
PASSPHRASE_ENV = "BCAI_PASSPHRASE"

_NOISE_VERSION = 1
_FAST_SCRYPT_N = 1 << 4


class IdentityError(Exception):
    """Root of the identity errors."""


class IdentityExists(IdentityError):
    """``init`` would overwrite an existing keystore."""


class IdentityNotFound(IdentityError):
    """No keystore in this data directory (run ``bcai init``)."""


class WrongPassphrase(IdentityError):
    """The passphrase does not open the keystore."""


class NoPassphrase(IdentityError):
    """No passphrase given and no terminal to ask on."""


@dataclass(frozen=True)
class Identity:
    """An unlocked identity. ``repr`` never shows key material.

    ``account`` is an eth-account ``LocalAccount`` or, as :func:`load_identity` makes it, a
    :class:`KeyAccount` (the same interface, eth-account loaded only when the chain needs it).
    """

    account: LocalAccount = field(repr=False)
    address: str  #: checksummed 0x address
    noise_private: bytes = field(repr=False)  #: X25519 static private key (32 bytes)
    noise_public: bytes  #: X25519 static public key (32 bytes)


def fast_kdf_requested(env: Mapping[str, str]) -> bool:
    """True when ``BCAI_INSECURE_FAST_KDF`` is set to a true value (tests, local demos)."""
    return env.get(FAST_KDF_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def keystore_dir(data_dir: Path) -> Path:
    return Path(data_dir) / KEYSTORE_DIR


def has_identity(data_dir: Path) -> bool:
    return (keystore_dir(data_dir) / ACCOUNT_FILE).exists()


def create_identity(
    data_dir: Path,
    passphrase: str,
    *,
    fast_kdf: bool = False,
    overwrite: bool = False,
    private_key: bytes | None = None,
) -> Identity:
    """Generate (or import ``private_key``) an account and a Noise key; write both encrypted."""
    from eth_account import Account

    kdir = keystore_dir(data_dir)
    if has_identity(data_dir) and not overwrite:
        raise IdentityExists(f"{kdir} already holds an identity (use --force to replace it)")
    account: LocalAccount = (
        Account.from_key(private_key) if private_key is not None else Account.create()
    )
    noise = nacl.public.PrivateKey.generate()
    if fast_kdf:
        keystore = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=_FAST_SCRYPT_N)
    else:
        keystore = Account.encrypt(account.key, passphrase, kdf="scrypt")
    sealed = _seal_noise(
        bytes(noise), bytes(noise.public_key), account.address, passphrase, fast_kdf
    )
    kdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(kdir, 0o700)
    _write_private(kdir / NOISE_FILE, sealed)
    _write_private(kdir / ACCOUNT_FILE, keystore)
    log.info("identity created", address=account.address, keystore=str(kdir))
    return Identity(account, account.address, bytes(noise), bytes(noise.public_key))


def load_identity(data_dir: Path, passphrase: str) -> Identity:
    """Decrypt the keystore of ``data_dir``; :class:`WrongPassphrase` if it does not open."""
    kdir = keystore_dir(data_dir)
    try:
        keystore = json.loads((kdir / ACCOUNT_FILE).read_text())
        sealed = json.loads((kdir / NOISE_FILE).read_text())
    except FileNotFoundError:
        raise IdentityNotFound(f"no identity in {kdir}; run `bcai init` first") from None
    except json.JSONDecodeError as exc:
        raise IdentityError(f"keystore in {kdir} is not valid JSON: {exc}") from None
    try:
        key = decrypt_keystore(keystore, passphrase)
    except ValueError:
        raise WrongPassphrase(f"the passphrase does not open {kdir / ACCOUNT_FILE}") from None
    account = KeyAccount(key)
    noise_private = _open_noise(sealed, passphrase)
    noise_public = bytes(nacl.public.PrivateKey(noise_private).public_key)
    if sealed.get("address", "").lower() != account.address.lower():
        raise IdentityError("the Noise key file belongs to another account")
    if bytes.fromhex(sealed.get("public_key", "")) != noise_public:
        raise IdentityError("the Noise key file's public key does not match its private key")
    return Identity(account, account.address, noise_private, noise_public)


def read_address(data_dir: Path) -> str | None:
    """The account address of ``data_dir`` without unlocking it (``None`` if none)."""
    try:
        keystore = json.loads((keystore_dir(data_dir) / ACCOUNT_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    addr = keystore.get("address") if isinstance(keystore, dict) else None
    if not isinstance(addr, str) or not addr:
        return None
    try:
        return to_checksum_address("0x" + addr.removeprefix("0x"))
    except ValueError:
        return None


def resolve_passphrase(
    env: Mapping[str, str],
    passphrase_file: Path | None = None,
    *,
    stdin: TextIO | None = None,
    confirm: bool = False,
) -> str:
    """The passphrase from ``--passphrase-file``, ``$BCAI_PASSPHRASE`` or a TTY prompt."""
    if passphrase_file is not None:
        try:
            return Path(passphrase_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise NoPassphrase(f"cannot read passphrase file {passphrase_file}: {exc}") from None
    if PASSPHRASE_ENV in env:
        return env[PASSPHRASE_ENV]
    isatty = getattr(stdin, "isatty", None)
    if stdin is None or not (isatty and isatty()):
        raise NoPassphrase(
            f"no passphrase: use --passphrase-file, set ${PASSPHRASE_ENV}, or run on a terminal"
        )
    first = getpass.getpass("Keystore passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise NoPassphrase("the passphrases do not match")
    return first


# -- the sealed Noise key --------------------------------------------------------------------


def _kdf_limits(fast: bool) -> tuple[int, int]:
    if fast:
        return nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN
    return nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def _seal_noise(
    private: bytes, public: bytes, address: str, passphrase: str, fast: bool
) -> dict[str, Any]:
    ops, mem = _kdf_limits(fast)
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    key = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=ops, memlimit=mem
    )
    box = nacl.secret.SecretBox(key)
    return {
        "version": _NOISE_VERSION,
        "type": "noise-x25519-static",
        "address": address,
        "public_key": public.hex(),
        "kdf": "argon2id",
        "kdfparams": {"opslimit": ops, "memlimit": mem, "salt": salt.hex()},
        "cipher": "xsalsa20-poly1305",
        "ciphertext": bytes(box.encrypt(private)).hex(),
    }


def _open_noise(sealed: dict[str, Any], passphrase: str) -> bytes:
    try:
        if sealed.get("version") != _NOISE_VERSION or sealed.get("kdf") != "argon2id":
            raise IdentityError("unsupported Noise key file version or KDF")
        params = sealed["kdfparams"]
        key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode(),
            bytes.fromhex(params["salt"]),
            opslimit=int(params["opslimit"]),
            memlimit=int(params["memlimit"]),
        )
        private = nacl.secret.SecretBox(key).decrypt(bytes.fromhex(sealed["ciphertext"]))
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase("the passphrase does not open the Noise key file") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise IdentityError(f"malformed Noise key file: {exc}") from None
    if len(private) != 32:
        raise IdentityError("the Noise key file holds a key of the wrong length")
    return bytes(private)


def _write_private(path: Path, obj: dict[str, Any]) -> None:
    """Write a secret JSON file atomically with mode 0600."""
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)


# -- the account key without eth-account ------------------------------------------------------

#: secp256k1 group order
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HEX_ADDRESS = re.compile(r"(0[xX])?([0-9a-fA-F]{40})")
_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n"
#: The most memory a keystore's scrypt may ask for (the v3 default, n = 2**18 and r = 8, needs
#: 256 MiB): a damaged file cannot make the node allocate more.
_SCRYPT_MAXMEM = 1 << 30


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's, not SHA3-256)."""
    return bytes(keccak(data))


def to_checksum_address(value: str | bytes) -> ChecksumAddress:
    """The EIP-55 form of a 20-byte address (raw bytes or 40 hex digits, ``0x`` optional);
    ``ValueError`` for anything else (same results as ``eth_utils.to_checksum_address``)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) != 20:
            raise ValueError(f"an address is 20 bytes, got {len(raw)}")
        hexaddr = raw.hex()
    elif isinstance(value, str) and (match := _HEX_ADDRESS.fullmatch(value)):
        hexaddr = match[2].lower()
    else:
        raise ValueError(f"not an address: {value!r}")
    digest = keccak256(hexaddr.encode()).hex()
    checksummed = "".join(
        c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(hexaddr)
    )
    return cast("ChecksumAddress", "0x" + checksummed)


def is_address(value: object) -> bool:
    """40 hex digits (``0x`` optional, any case) or 20 bytes, as ``eth_utils.is_address``."""
    if isinstance(value, bytes | bytearray):
        return len(value) == 20
    return isinstance(value, str) and _HEX_ADDRESS.fullmatch(value) is not None


def address_of_public_key(public_key: bytes) -> str:
    """The checksummed address of an uncompressed (65-byte ``04 || x || y``) public key."""
    return to_checksum_address(keccak256(public_key[1:])[12:])


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """Sign a 32-byte digest: 65 bytes ``r || s || v`` (v 27/28), RFC 6979, low s (the
    signature eth-account makes for the same key and hash)."""
    from coincurve import PrivateKey

    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    sig = PrivateKey(bytes(private_key)).sign_recoverable(bytes(digest), hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def recover_address(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made ``signature`` (``r || s || v``, v 27/28 or 0/1)
    over the 32-byte ``digest``; ``ValueError`` when it does not recover. Form checks (low s,
    ranges) are the caller's."""
    from coincurve import PublicKey

    if len(digest) != 32 or len(signature) != 65:
        raise ValueError("a digest is 32 bytes and a signature 65")
    v = signature[64]
    recid = v - 27 if v >= 27 else v
    if recid not in (0, 1):
        raise ValueError(f"bad recovery id {v}")
    try:
        public = PublicKey.from_signature_and_message(
            bytes(signature[:64]) + bytes([recid]), bytes(digest), hasher=None
        )
    except Exception as exc:  # coincurve raises plain Exception for an invalid signature
        raise ValueError(f"signature does not recover: {exc}") from None
    return address_of_public_key(public.format(compressed=False))


def eip191_digest(message: bytes) -> bytes:
    """The ``personal_sign`` (EIP-191 version 0x45) digest of ``message``."""
    return keccak256(_EIP191_PREFIX + str(len(message)).encode() + bytes(message))


def decrypt_keystore(keystore: Mapping[str, Any], passphrase: str) -> bytes:
    """The private key of a v3 (Web3 Secret Storage) keystore, as ``Account.decrypt`` reads it;
    ``ValueError`` for a wrong passphrase or a keystore it cannot read. Other versions go to
    eth-account."""
    ks = {str(k).lower(): v for k, v in keystore.items()}
    if ks.get("version") != 3:
        from eth_account import Account

        return bytes(Account.decrypt(dict(keystore), passphrase))
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    password = passphrase.encode()
    try:
        crypto = {str(k).lower(): v for k, v in ks["crypto"].items()}
        params = crypto["kdfparams"]
        salt = bytes.fromhex(str(params["salt"]).removeprefix("0x"))
        dklen = int(params["dklen"])
        if crypto["kdf"] == "scrypt":
            n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
            derived = hashlib.scrypt(
                password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_SCRYPT_MAXMEM
            )
        elif crypto["kdf"] == "pbkdf2":
            prf = str(params["prf"])
            if not prf.startswith("hmac-"):
                raise ValueError(f"unsupported pbkdf2 prf {prf}")
            derived = hashlib.pbkdf2_hmac(prf[5:], password, salt, int(params["c"]), dklen)
        else:
            raise ValueError(f"unsupported key derivation function {crypto['kdf']}")
        if crypto.get("cipher", "aes-128-ctr") != "aes-128-ctr":
            raise ValueError(f"unsupported cipher {crypto['cipher']}")
        ciphertext = bytes.fromhex(str(crypto["ciphertext"]).removeprefix("0x"))
        mac = bytes.fromhex(str(crypto["mac"]).removeprefix("0x"))
        iv = bytes.fromhex(str(crypto["cipherparams"]["iv"]).removeprefix("0x"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed keystore: {exc!r}") from None
    if not hmac.compare_digest(keccak256(derived[16:32] + ciphertext), mac):
        raise ValueError("MAC mismatch")
    if len(iv) != 16:
        raise ValueError("malformed keystore: iv must be 16 bytes")
    decryptor = Cipher(algorithms.AES(derived[:16]), modes.CTR(iv)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


class KeyAccount(_AccountBase):
    """An account key with what the data plane needs: ``address``, ``key``, :meth:`sign_hash`.

    Anything else (``sign_transaction``, ``sign_message``, ...) is an eth-account
    ``LocalAccount``'s, built from the key on first use, so chain code takes a ``KeyAccount``
    wherever it takes a ``LocalAccount``. ``repr`` shows the address only.
    """

    def __init__(self, private_key: bytes) -> None:
        from coincurve import PrivateKey

        key = bytes(private_key)
        if len(key) != 32 or not 0 < int.from_bytes(key, "big") < SECP256K1_N:
            raise ValueError("a secp256k1 private key is 32 bytes in [1, n)")
        public = PrivateKey(key).public_key.format(compressed=False)
        self.__dict__["_key"] = key
        self.__dict__["_address"] = address_of_public_key(public)
        self.__dict__["_local"] = None

    @property
    def address(self) -> str:  # type: ignore[override]
        return str(self.__dict__["_address"])

    @property
    def key(self) -> bytes:
        return bytes(self.__dict__["_key"])

    def sign_hash(self, digest: bytes) -> bytes:
        """65 bytes ``r || s || v`` over a 32-byte digest (see :func:`sign_digest`)."""
        return sign_digest(self.__dict__["_key"], digest)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        local = self.__dict__.get("_local")
        if local is None:
            from eth_account import Account

            local = self.__dict__["_local"] = Account.from_key(self.__dict__["_key"])
        return getattr(local, name)

    def __repr__(self) -> str:
        return f"KeyAccount({self.address})"


def account_signature(account: Any, digest: bytes) -> bytes:
    """``r || s || v`` by ``account`` (a :class:`KeyAccount` or an eth-account
    ``LocalAccount``) over ``digest``, without loading eth-account for either."""
    return sign_digest(bytes(account.key), digest)
