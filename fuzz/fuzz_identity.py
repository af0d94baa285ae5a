"""Fuzz ``node.wire.verify_identity_payload``: the payload inside Noise XX messages 2 and 3.

Typed errors allowed to escape: ``IdentityError`` (``MalformedIdentity``, ``BadSignature``,
``IdentityVersionError``, ``IdentityMismatch``). Invariants: a payload outside 97..97+1024
bytes is never accepted; an accepted payload names the address whose key signed this exact
static key, and its capabilities round-trip. The static key is fixed (the one the seeds were
signed over), so mutations of a valid seed explore the signature and capability checks.

``FUZZ_IDENTITY_FAST=1`` replaces secp256k1 recovery (eth-keys' pure-Python backend, ~2 ms,
which caps the real harness at a few hundred inputs/s) by a table of the seed signatures: a
seed signature recovers to its signer, anything else raises as an invalid point would. That
mode fuzzes everything this project parses around the signature; it does not fuzz eth-keys.
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import _common

    from node.wire import IDENTITY_PAYLOAD_LEN, IdentityError, _identity, verify_identity_payload
    from node.wire._identity import MAX_EXTENSIONS

Finding = _common.Finding
STATIC = bytes(range(32))  # must match fuzz/make_seeds.py


class _SeedTableAccount:
    """Stands in for ``eth_account.Account`` in fast mode: recovers only the seed signatures."""

    def __init__(self) -> None:
        from eth_account import Account

        self._table: dict[bytes, str] = {}
        for k in range(8):  # the keys fuzz/make_seeds.py signs with
            acct = Account.from_key(bytes([k + 1]) * 32)
            payload = _identity.make_identity_payload(acct, STATIC)
            self._table[payload[22:87]] = acct.address

    def recover_message(self, _msg: object, *, signature: bytes) -> str:
        try:
            return self._table[bytes(signature)]
        except KeyError:
            raise ValueError("not a seed signature") from None


if os.environ.get("FUZZ_IDENTITY_FAST") == "1":
    _identity.Account = _SeedTableAccount()  # type: ignore[assignment,misc]


def body(data: bytes) -> None:
    try:
        ident = verify_identity_payload(data, STATIC)
    except IdentityError:
        return
    if not IDENTITY_PAYLOAD_LEN <= len(data) <= IDENTITY_PAYLOAD_LEN + MAX_EXTENSIONS:
        raise Finding(f"accepted a payload of {len(data)} bytes")
    if ident.address.lower() != "0x" + data[2:22].hex():
        raise Finding("accepted identity names another address than the payload")
    if ident.capabilities.to_bytes() != data[87:IDENTITY_PAYLOAD_LEN]:
        raise Finding("capabilities do not round-trip")
    if ident.noise_static != STATIC:
        raise Finding("static key not bound")


def main() -> None:
    atheris.Setup(sys.argv, _common.guarded("identity", body))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
