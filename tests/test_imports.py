"""A node that only transfers loads no chain libraries (issue #11: <= 100 MiB per node process).

web3 (and aiohttp, websockets under it), eth-account, eth-utils (and the pydantic it imports),
eth-keyfile (and py_ecc's BLS tables), eth-abi: together ~35 MiB of every process that imported
them, before a byte moved. The data plane signs and checks with ``node.identity`` (libsecp256k1)
and loads the chain libraries only when chain work runs (docs/decisions.md D34). These tests fail
if one of them comes back on the path of ``bcai serve`` without chain duties: once by importing
the modules a serving node imports, once in real ``bcai serve`` processes that moved data
(handshakes, receipts signed and verified), by the shared objects they mapped and their peak RSS.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests._procs import ENV, ServeProcess, cli

#: Modules a node without chain duties must not load.
HEAVY = (
    "web3",
    "eth_account",
    "eth_keys",
    "eth_keyfile",
    "eth_utils",
    "eth_abi",
    "pydantic",
    "py_ecc",
    "aiohttp",
    "rich",
)
#: What a serving node imports (``bcai serve``'s handler, the daemon, its API, the transfer
#: engine, the services package whose duties stay off).
SERVE_PATH = (
    "node.cli._main",
    "node.cli._net_cmds",
    "node.app._daemon",
    "node.app._api",
    "node.service",
    "node.transfer",
    "node.identity",
    "node.receipt",
    "node.wire",
    "chain",
    "chain.config",
    "chain.port",
)
#: Shared objects that only the chain libraries map (pydantic_core under eth-utils; aiohttp,
#: websockets' speedups and ckzg under web3).
HEAVY_LIBRARIES = ("pydantic_core", "aiohttp", "websockets", "ckzg")
#: Peak RSS bound for a node process in these tests (a 4 MiB transfer; the 1 GiB figures are in
#: docs/benchmarks.md). With the chain libraries loaded it was ~98 MiB at start; without, ~65.
PEAK_BOUND_MIB = 88


def test_the_serve_path_imports_no_chain_library() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {SERVE_PATH!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout) == []


def test_chain_code_still_loads_them_when_used() -> None:
    """The other side of the same change: the chain client gets a working web3 when built."""
    code = (
        "import json, sys\n"
        "from chain import EmbeddedChain\n"
        "before = 'web3' in sys.modules\n"
        "chain = EmbeddedChain()\n"
        "print(json.dumps([before, 'web3' in sys.modules, chain.block_number() >= 0]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(out.stdout) == [False, True, True]


def _status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) // 1024
    return fields


def _mapped(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in HEAVY_LIBRARIES if f"/{name}" in maps}


def test_serving_nodes_map_no_chain_library_and_stay_small(tmp_path: Path) -> None:
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    for data in (prov, recv):
        assert cli(data, "init")[0] == 0
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(4 << 20))
    status, added, err = cli(prov, "add", str(src))
    assert status == 0, err
    # The provider as the benchmark runs it (config default: no JSON-RPC chain, duties off),
    # the receiver as a daemon without chain duties; the get goes through the receiver's API.
    with ServeProcess(prov) as server, ServeProcess(recv, "--no-chain") as receiver:
        assert server.info["chain_duties"] is False
        out = tmp_path / "got.bin"
        status, _, err = cli(recv, "get", added["root"], "--peer", server.peer, "-o", str(out))
        assert status == 0, err
        assert (
            hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
        )
        # the receiver signed a receipt, the provider verified and stored it
        status, st, err = cli(prov, "status")
        assert status == 0, err
        assert st["receipts"].get("pending", 0) >= 1, st["receipts"]
        for node in (server, receiver):
            pid = node.proc.pid
            assert _mapped(pid) == set(), f"{node.data.name} mapped chain libraries"
            status_ = _status(pid)
            assert status_["VmHWM"] <= PEAK_BOUND_MIB, (node.data.name, status_)
    assert ENV["BCAI_INSECURE_FAST_KDF"] == "1"  # the bound does not cover a real scrypt unlock
