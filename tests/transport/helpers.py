"""Shared helpers: throwaway identities and Noise stream pairs over trio memory streams."""

from __future__ import annotations

from dataclasses import dataclass

import trio
import trio.testing
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.noise import KeyPair
from node.transport import NoiseStream
from node.wire._identity import make_identity_payload


@dataclass
class Ident:
    account: LocalAccount
    static: KeyPair
    payload: bytes

    @property
    def address(self) -> str:
        return self.account.address


def make_ident() -> Ident:
    account = Account.create()
    static = KeyPair.generate()
    return Ident(account, static, make_identity_payload(account, static.public))


def noise_pair(
    a: Ident | None = None,
    b: Ident | None = None,
    *,
    expected_by_a: str | None = None,
    expected_by_b: str | None = None,
    lockstep: bool = False,
    **kw: object,
) -> tuple[NoiseStream, NoiseStream]:
    a = a or make_ident()
    b = b or make_ident()
    if lockstep:
        ta, tb = trio.testing.lockstep_stream_pair()
    else:
        ta, tb = trio.testing.memory_stream_pair()
    client = NoiseStream(
        ta,
        initiator=True,
        static=a.static,
        identity_payload=a.payload,
        expected_address=expected_by_a,
        **kw,  # type: ignore[arg-type]
    )
    server = NoiseStream(
        tb,
        initiator=False,
        static=b.static,
        identity_payload=b.payload,
        expected_address=expected_by_b,
        **kw,  # type: ignore[arg-type]
    )
    return client, server
