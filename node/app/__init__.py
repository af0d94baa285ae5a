"""The node as one object: composition root, daemon, local API, client (layer 7).

``open_node(data_dir) -> Node`` builds a node (docs/library.md); ``run_daemon`` runs it as a
service with a local HTTP API; ``find_daemon(data_dir) -> RemoteNode`` talks to a running one.
Names load lazily: ``import node.app`` costs nothing until one is used (the CLI's ``bcai ls``
should not import the HTTP server, nor ``bcai --help`` the transfer engine).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    ExitStatus,
    Failure,
    NodeError,
    NotInitialised,
    classify,
    clean_message,
    leaf,
)

if TYPE_CHECKING:
    from ._client import RemoteNode, find_daemon
    from ._daemon import run_daemon
    from ._node import Node, TransferInfo, open_node

_NODE = ("Node", "TransferInfo", "open_node")
_CLIENT = ("RemoteNode", "find_daemon")


def __getattr__(name: str) -> Any:
    if name in _NODE:
        from . import _node

        return getattr(_node, name)
    if name in _CLIENT:
        from . import _client

        return getattr(_client, name)
    if name == "run_daemon":
        from . import _daemon

        return _daemon.run_daemon
    raise AttributeError(f"module 'node.app' has no attribute {name!r}")


__all__ = [
    "ExitStatus",
    "Failure",
    "Node",
    "NodeError",
    "NotInitialised",
    "RemoteNode",
    "TransferInfo",
    "classify",
    "clean_message",
    "find_daemon",
    "leaf",
    "open_node",
    "run_daemon",
]
