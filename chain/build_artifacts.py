"""Compile contracts/src with forge and write the artifacts the `chain` package ships.

Run from anywhere: ``python -m chain.build_artifacts`` (``--check`` only reports staleness).

For every deployable contract this writes ``chain/artifacts/<Name>.json`` with the keys
``contractName``, ``abi``, ``bytecode`` and ``deployedBytecode`` (0x-prefixed hex) and
``sourceHash``: :func:`source_hash` over ``contracts/src``, so a test (and the client at start-up,
if it wants) can tell that the artifacts no longer match the sources. forge runs with the solcjs
shim in ``contracts/tools/solc`` because it cannot download a native solc offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCES = REPO_ROOT / "contracts" / "src"
FORGE_OUT = REPO_ROOT / "contracts" / "out"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FORGE = REPO_ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
SOLC_SHIM = REPO_ROOT / "contracts" / "tools" / "solc"

#: Contracts whose artifacts ship with the package (RFC6962Harness is for tests only).
CONTRACTS: tuple[str, ...] = (
    "ContentRegistry",
    "TransferReceipts",
    "DataAvailability",
    "HostingRewards",
    "HostDirectory",
    "RFC6962Harness",
)


class BuildError(RuntimeError):
    """forge failed or produced no output for a contract."""


def source_hash(sources: Path = SOURCES) -> str:
    """SHA-256 (hex) over every ``*.sol`` under ``sources``, in sorted path order.

    Each file contributes its path relative to ``sources`` (POSIX form, UTF-8), a NUL byte, its
    length as 8 bytes big-endian and its bytes, so renaming or moving content changes the hash.
    """
    digest = hashlib.sha256()
    files = sorted(sources.rglob("*.sol"), key=lambda p: p.relative_to(sources).as_posix())
    for path in files:
        data = path.read_bytes()
        digest.update(path.relative_to(sources).as_posix().encode() + b"\0")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def run_forge_build(root: Path = REPO_ROOT) -> None:
    """Run ``forge build`` over the repository with the solc shim; raise BuildError on failure."""
    if not FORGE.exists():
        raise BuildError(f"forge not found at {FORGE}; run `npm ci` in {root}")
    env = dict(os.environ, FOUNDRY_SOLC=str(SOLC_SHIM))
    proc = subprocess.run(
        [str(FORGE), "build", "--root", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(f"forge build failed:\n{proc.stdout}\n{proc.stderr}")


def _hex(value: str) -> str:
    return value if value.startswith("0x") else "0x" + value


def artifact_for(name: str, digest: str, out: Path = FORGE_OUT) -> dict[str, Any]:
    """The shipped artifact of contract ``name`` built from forge's output."""
    path = out / f"{name}.sol" / f"{name}.json"
    if not path.exists():
        raise BuildError(f"no forge output for {name} at {path}")
    compiled = json.loads(path.read_text())
    bytecode = _hex(compiled["bytecode"]["object"])
    if len(bytecode) <= 2:
        raise BuildError(f"{name} has no bytecode (abstract or interface?)")
    return {
        "contractName": name,
        "abi": compiled["abi"],
        "bytecode": bytecode,
        "deployedBytecode": _hex(compiled["deployedBytecode"]["object"]),
        "sourceHash": digest,
    }


def stale_artifacts(artifacts: Path = ARTIFACTS) -> list[str]:
    """Names of shipped artifacts that are missing or were built from other sources."""
    digest = source_hash()
    stale = []
    for name in CONTRACTS:
        path = artifacts / f"{name}.json"
        if not path.exists() or json.loads(path.read_text()).get("sourceHash") != digest:
            stale.append(name)
    return stale


def build(artifacts: Path = ARTIFACTS) -> list[Path]:
    """Compile and (re)write every artifact; return the paths written."""
    digest = source_hash()
    run_forge_build()
    artifacts.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CONTRACTS:
        target = artifacts / f"{name}.json"
        text = json.dumps(artifact_for(name, digest), indent=1, sort_keys=True) + "\n"
        target.write_text(text)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m chain.build_artifacts", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale artifacts")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_artifacts()
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    try:
        for path in build():
            print(path.relative_to(REPO_ROOT))
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
