"""Errors of the ``chain`` package, one root, split by whose fault it is.

- ``ChainUsageError``: local misuse (missing artifacts, no deployment configured, bad argument).
- ``ChainUnavailable``: the node is down or unreachable (retry later).
- ``ChainRevert``: the chain ran the call and a contract refused it. Custom errors declared in
  the ABIs become subclasses named after the error (``NonceUsed``, ``QuorumNotMet``, ...) with
  the decoded arguments in ``args_``; build them with ``revert_class(name)`` so callers can write
  ``except revert_class("NonceUsed")`` or compare ``exc.name``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArtifactMissing",
    "ChainError",
    "ChainRevert",
    "ChainUnavailable",
    "ChainUsageError",
    "DeploymentMissing",
    "RegistrationMismatch",
    "ReorgTooDeep",
    "revert_class",
]


class ChainError(Exception):
    """Root of every error raised by the ``chain`` package."""


class ChainUsageError(ChainError, ValueError):
    """Local fault: the caller asked for something that cannot work as configured."""


class ArtifactMissing(ChainUsageError):
    """A compiled contract artifact (chain/artifacts/<Name>.json) is absent or unreadable."""


class DeploymentMissing(ChainUsageError):
    """No contract addresses are configured (run ``bcai chain up`` or ``bcai chain deploy``)."""


class ChainUnavailable(ChainError, ConnectionError):
    """The chain node did not answer (down, unreachable, or timed out)."""


class ReorgTooDeep(ChainError):
    """A reorganisation reached below the blocks the indexer keeps hashes for."""


class RegistrationMismatch(ChainError):
    """The root is registered already, with another size or slot layout than ours.

    Not "already registered, fine": a host holding the real content could not prove it against
    that registration, so publishing must stop and say so."""

    def __init__(self, root: bytes, ours: tuple[object, ...], theirs: tuple[object, ...]) -> None:
        self.root = root
        self.ours = ours
        self.theirs = theirs
        super().__init__(
            f"0x{root.hex()} is registered as (size, dataShards, slotCount, slotsRoot) = "
            f"{_shown(theirs)}, not {_shown(ours)}"
        )


def _shown(values: tuple[object, ...]) -> str:
    return "(" + ", ".join(_show(v) for v in values) + ")"


class ChainRevert(ChainError):
    """A contract reverted; ``name`` is the custom error (or ``Error``, ``Panic``, ``Unknown``)."""

    name: str = "Unknown"

    def __init__(
        self, name: str, args: dict[str, Any] | None = None, data: bytes = b"", message: str = ""
    ) -> None:
        self.name = name
        self.args_ = dict(args or {})
        self.data = data
        detail = ", ".join(f"{k}={_show(v)}" for k, v in self.args_.items())
        super().__init__(message or f"{name}({detail})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.name, self.args_, self.data, str(self)))


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


_CLASSES: dict[str, type[ChainRevert]] = {}


def revert_class(name: str) -> type[ChainRevert]:
    """The ``ChainRevert`` subclass for custom error ``name`` (created once, then cached)."""
    cls = _CLASSES.get(name)
    if cls is None:
        cls = type(name, (ChainRevert,), {"name": name, "__module__": __name__})
        _CLASSES[name] = cls
    return cls


def _rebuild(name: str, args: dict[str, Any], data: bytes, message: str) -> ChainRevert:
    return revert_class(name)(name, args, data, message)
