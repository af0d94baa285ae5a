"""The node's identity: an Ethereum account and a Noise static key, both encrypted at rest.

``<data dir>/keystore/`` holds:

- ``account.json``: a Web3 Secret Storage (v3) keystore made by ``eth_account.Account.encrypt``
  (scrypt); the account signs receipts and the Noise identity binding.
- ``noise.json``: the X25519 static key for ``Noise_XX``, sealed with ``nacl.secret.SecretBox``
  under a key derived from the same passphrase with argon2id (``nacl.pwhash.argon2id``). It
  records the account address it belongs to and its public key in clear.

The KDFs cost about a second by design. Tests and local demos may set
``BCAI_INSECURE_FAST_KDF=1`` (or pass ``fast_kdf=True``) to use minimal KDF parameters: never
for a key that guards anything. Passphrases are never logged.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.secret
import nacl.utils

from node._fs import atomic_write
from node.log import get_logger

if TYPE_CHECKING:  # eth_account takes a second to import: only the functions that need it do
    from eth_account.signers.local import LocalAccount

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
    """An unlocked identity. ``repr`` never shows key material."""

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
    from eth_account import Account

    kdir = keystore_dir(data_dir)
    try:
        keystore = json.loads((kdir / ACCOUNT_FILE).read_text())
        sealed = json.loads((kdir / NOISE_FILE).read_text())
    except FileNotFoundError:
        raise IdentityNotFound(f"no identity in {kdir}; run `bcai init` first") from None
    except json.JSONDecodeError as exc:
        raise IdentityError(f"keystore in {kdir} is not valid JSON: {exc}") from None
    try:
        key = Account.decrypt(keystore, passphrase)
    except ValueError:
        raise WrongPassphrase(f"the passphrase does not open {kdir / ACCOUNT_FILE}") from None
    account: LocalAccount = Account.from_key(key)
    noise_private = _open_noise(sealed, passphrase)
    noise_public = bytes(nacl.public.PrivateKey(noise_private).public_key)
    if sealed.get("address", "").lower() != account.address.lower():
        raise IdentityError("the Noise key file belongs to another account")
    if bytes.fromhex(sealed.get("public_key", "")) != noise_public:
        raise IdentityError("the Noise key file's public key does not match its private key")
    return Identity(account, account.address, noise_private, noise_public)


def read_address(data_dir: Path) -> str | None:
    """The account address of ``data_dir`` without unlocking it (``None`` if none)."""
    from eth_utils import to_checksum_address

    try:
        keystore = json.loads((keystore_dir(data_dir) / ACCOUNT_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    addr = keystore.get("address") if isinstance(keystore, dict) else None
    if not isinstance(addr, str) or not addr:
        return None
    return str(to_checksum_address("0x" + addr.removeprefix("0x")))


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
