"""Layers import only downward; nothing below the chain boundary imports web3."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> rank; a module may import node/chain packages of lower or equal rank only.
RANK = {
    "node.content": 1,
    "node.store": 2,
    "node.noise": 3,
    "node.wire": 3,
    "node.receipt": 3,
    "node.log": 0,
    "node._fs": 0,
    "node.config": 2,
    "node.identity": 2,
    "node.transport": 3.5,
    "node.transfer": 4,
    "node.ledger": 5,
    "chain": 6,
    "node.service": 7,
    "node.api": 7,
    "node.cli": 7,
}
CHAIN_ONLY = ("web3", "eth_tester", "eth.", "eth_utils.curried")


def _package_of(module: str) -> str | None:
    best = None
    for pkg in RANK:
        inside = module == pkg or module.startswith(pkg + ".")
        if inside and (best is None or len(pkg) > len(best)):
            best = pkg
    return best


def _modules() -> list[tuple[str, Path]]:
    out = []
    for top in ("node", "chain"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join(parts), path))
    return out


def _imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    pkg_parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg_parts[: len(pkg_parts) - node.level + 1]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_imports_only_downward(module: str, path: Path) -> None:
    own = _package_of(module)
    if own is None:
        assert module in ("node", "chain"), f"{module} is not in the layer table"
        return
    for name in _imports(path, module):
        if RANK[own] < RANK["chain"]:
            assert not name.startswith(CHAIN_ONLY), f"{module} imports {name} below the chain layer"
        target = _package_of(name)
        if target is None or target == own:
            continue
        assert RANK[target] <= RANK[own], f"{module} (layer {RANK[own]}) imports {name}"
