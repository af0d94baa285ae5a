"""The node as one object: composition root, daemon, local API, client (layer 7).

``open_node(data_dir) -> Node`` builds a node (docs/library.md); ``run_daemon`` runs it as a
service with a local HTTP API; ``find_daemon(data_dir) -> RemoteNode`` talks to a running one.
Attributes load lazily: ``import node.app`` costs nothing until a name is used (the CLI's
``bcai ls`` should not import the HTTP stack).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Node": "._node",
    "TransferInfo": "._node",
    "open_node": "._node",
    "ExitStatus": "._errors",
    "Failure": "._errors",
    "NodeError": "._errors",
    "classify": "._errors",
    "leaf": "._errors",
    "run_daemon": "._daemon",
    "RemoteNode": "._client",
    "find_daemon": "._client",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'node.app' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


__all__ = sorted(_EXPORTS)
