"""Chain backends: one small interface, two implementations.

- ``EmbeddedChain``: eth-tester's ``PyEVMBackend`` in this process (Prague by default, chain id
  131277322940537, ten dev accounts funded with 1,000,000 ETH each; account *i* has private key
  *i + 1*). It lives and dies with the Python process.
- ``RpcChain``: any JSON-RPC node (anvil for local multi-process runs, a real network in
  production). On anvil (chain id 31337) the dev accounts are anvil's well-known mnemonic ones.

Both sign transactions locally with eth-account and send them raw, so the same code path works
against a real network. Test helpers (time travel, mining, snapshots) map to eth-tester calls on
the embedded chain and to ``evm_*`` RPC methods on anvil.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from .errors import ChainUnavailable, ChainUsageError

if TYPE_CHECKING:  # web3 and eth-account load when a backend is built, not on import
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_MNEMONIC",
    "PYEVM_CHAIN_ID",
    "ChainBackend",
    "EmbeddedChain",
    "RpcChain",
]

PYEVM_CHAIN_ID = 131277322940537
ANVIL_CHAIN_ID = 31337
#: anvil's default dev mnemonic (public, for local chains only).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


class ChainBackend(abc.ABC):
    """What the client, deployer and indexer need from a chain."""

    kind: str
    w3: Web3

    @property
    def chain_id(self) -> int:
        cached: int | None = getattr(self, "_chain_id", None)
        if cached is None:
            cached = self._call(lambda: int(self.w3.eth.chain_id))
            self._chain_id = cached
        return cached

    @property
    def url(self) -> str | None:
        """The JSON-RPC URL, or ``None`` for the embedded chain."""
        return None

    @abc.abstractmethod
    def dev_accounts(self) -> list[LocalAccount]:
        """Prefunded accounts of a development chain ([] on a real network)."""

    def is_up(self) -> bool:
        try:
            self.w3.eth.block_number  # noqa: B018 - a cheap liveness probe
        except Exception:
            return False
        return True

    def block_number(self) -> int:
        return self._call(lambda: int(self.w3.eth.block_number))

    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        return self._call(lambda: int(self.w3.eth.get_block("latest")["timestamp"]))

    # -- development helpers (tests, demo) --------------------------------------------------

    @abc.abstractmethod
    def time_travel(self, seconds: int) -> None:
        """Mine a block at least ``seconds`` later than the latest one."""

    @abc.abstractmethod
    def mine(self, blocks: int = 1) -> None:
        """Mine empty blocks."""

    @abc.abstractmethod
    def snapshot(self) -> Any:
        """Remember the chain state; ``revert(snapshot)`` goes back to it."""

    @abc.abstractmethod
    def revert(self, snapshot: Any) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (no-op by default)."""

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except (ConnectionError, OSError, TimeoutError) as exc:
            raise ChainUnavailable(f"chain did not answer: {exc}") from None
        except Exception as exc:
            if type(exc).__name__ in {
                "ConnectionError",
                "Timeout",
                "ReadTimeout",
                "ProviderConnectionError",
            }:
                raise ChainUnavailable(f"chain did not answer: {exc}") from None
            raise


class EmbeddedChain(ChainBackend):
    """An in-process py-evm chain (eth-tester). ``hardfork`` is "prague" (default) or "cancun"."""

    kind = "embedded"

    def __init__(self, hardfork: str = "prague", accounts: int = 10) -> None:
        from eth_account import Account
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import Web3
        from web3.providers.eth_tester import EthereumTesterProvider

        if hardfork == "prague":
            backend = PyEVMBackend(
                genesis_state=PyEVMBackend.generate_genesis_state(num_accounts=accounts)
            )
        elif hardfork == "cancun":
            from eth.vm.forks import CancunVM

            backend = PyEVMBackend(
                genesis_state=PyEVMBackend.generate_genesis_state(num_accounts=accounts),
                vm_configuration=((0, CancunVM),),
            )
        else:
            raise ChainUsageError(f"unsupported hardfork for the embedded chain: {hardfork}")
        self.hardfork = hardfork
        self.tester = EthereumTester(backend)
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self._accounts = [Account.from_key((i + 1).to_bytes(32, "big")) for i in range(accounts)]

    def dev_accounts(self) -> list[LocalAccount]:
        return list(self._accounts)

    def time_travel(self, seconds: int) -> None:
        pending = int(self.tester.get_block_by_number("pending")["timestamp"])
        self.tester.time_travel(pending + max(1, int(seconds)))

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot: Any) -> None:
        self.tester.revert_to_snapshot(snapshot)


class RpcChain(ChainBackend):
    """A chain behind a JSON-RPC URL (http(s)://...)."""

    kind = "rpc"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ChainUsageError(f"only http(s) JSON-RPC URLs are supported: {url}")
        from web3 import Web3

        self._url = url
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))

    @property
    def url(self) -> str | None:
        return self._url

    def dev_accounts(self) -> list[LocalAccount]:
        if self.chain_id != ANVIL_CHAIN_ID:
            return []
        from eth_account import Account

        Account.enable_unaudited_hdwallet_features()
        return [
            Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
            for i in range(10)
        ]

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self._call(lambda: self.w3.provider.make_request(method, params))  # type: ignore[arg-type]
        if "error" in response:
            raise ChainUsageError(f"{method} failed: {response['error']}")
        return response.get("result")

    def time_travel(self, seconds: int) -> None:
        self._rpc("evm_increaseTime", [max(1, int(seconds))])
        self._rpc("evm_mine", [])

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self._rpc("evm_mine", [])

    def snapshot(self) -> Any:
        return self._rpc("evm_snapshot", [])

    def revert(self, snapshot: Any) -> None:
        if not self._rpc("evm_revert", [snapshot]):
            raise ChainUsageError(f"evm_revert({snapshot}) refused")
