"""One mapping from the library's typed errors to exit codes and one-line messages.

The CLI (in-process or through a daemon), the local HTTP API and the Python API all classify
errors here, so ``bcai get`` fails the same way whether it ran the fetch itself or asked a
running node to. :func:`classify` takes a leaf exception (see :func:`leaf`) and returns a
:class:`Failure`, or ``None`` for what nobody expected: a bug, reported with a traceback.
"""

from __future__ import annotations

import enum
import errno
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ExitStatus(enum.IntEnum):
    """Process exit codes; stable, documented in docs/operations.md."""

    OK = 0
    ERROR = 1  #: unexpected failure
    USAGE = 2  #: bad arguments or configuration
    NOT_FOUND = 3  #: content, file or data directory missing
    VERIFY_FAILED = 4  #: stored or received data failed verification
    PEER_ERROR = 5  #: the remote peer failed or misbehaved
    CHAIN_ERROR = 6  #: the chain rejected a call or is unreachable
    UNAVAILABLE = 7  #: a local condition: store in use, disk full, read-only data dir or output
    INTERRUPTED = 130  #: Ctrl-C; state is saved and the command can be re-run


@dataclass(frozen=True)
class Failure:
    """What a command reports for an error: exit status, one line, retryable, details."""

    status: ExitStatus
    message: str
    retryable: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "status": self.status.name.lower(),
            "retryable": self.retryable,
            **self.details,
        }

    @classmethod
    def from_json(cls, obj: Any) -> Failure:
        """The inverse of :meth:`to_json` (a daemon's answer); hostile input gets ERROR."""
        if not isinstance(obj, dict):
            return cls(ExitStatus.ERROR, f"unexpected answer from the node: {obj!r:.200}")
        name = str(obj.get("status", "error")).upper()
        status = ExitStatus.__members__.get(name, ExitStatus.ERROR)
        details = {k: v for k, v in obj.items() if k not in ("error", "status", "retryable")}
        return cls(status, str(obj.get("error", "")), bool(obj.get("retryable")), details)


class NodeError(Exception):
    """An error that already is a :class:`Failure` (a daemon's answer, a refused request)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


_BYTES_REPR = re.compile(r"""\bb(['"])(.*?)\1""")


def clean_message(message: str) -> str:
    """One line, without Python ``b'...'`` reprs (LevelDB's errors arrive as bytes)."""
    message = _BYTES_REPR.sub(lambda m: m.group(2), message)
    return " ".join(message.split())


def leaf(exc: BaseException) -> BaseException:
    """The error behind nested exception groups (Ctrl-C first, trio's Cancelled last)."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(reversed(e.exceptions))
        else:
            leaves.append(e)
    for e in leaves:
        if isinstance(e, KeyboardInterrupt):
            return e
    real = [e for e in leaves if type(e).__name__ != "Cancelled"]
    return (real or leaves or [exc])[0]


_READ_ONLY_HINTS = ("read-only file system", "permission denied")


def _read_only(exc: BaseException) -> str:
    """Why ``exc`` means "cannot write here" ("" when it does not)."""
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return os.strerror(exc.errno or 0)
    text = str(exc).lower()
    return next((hint for hint in _READ_ONLY_HINTS if hint in text), "")


def _where(exc: BaseException) -> str:
    filename = getattr(exc, "filename", None)
    return f" ({filename})" if filename else ""


def classify(exc: BaseException, data_dir: Path | None = None) -> Failure | None:
    """The :class:`Failure` for one leaf exception; ``None``: not an expected condition."""
    return _classify_chain(exc) or _classify_transfer(exc) or _classify_local(exc, data_dir)


def _classify_chain(exc: BaseException) -> Failure | None:
    """Errors of the ``chain`` package, web3 and receipts, without importing them (web3 takes
    seconds to import): an error of its kind exists only if its module was loaded.

    ``ChainUnavailable`` (the RPC endpoint is down or unreachable) is ``retryable``: the same
    command can succeed once the chain is back (docs/operations.md, exit codes)."""
    web3_errors = sys.modules.get("web3.exceptions")
    if web3_errors is not None and isinstance(exc, web3_errors.Web3RPCError):
        return Failure(ExitStatus.CHAIN_ERROR, f"the chain refused: {exc}")  # e.g. no funds
    receipt = sys.modules.get("node.receipt")
    if receipt is not None and isinstance(exc, receipt.ReceiptError):
        return Failure(ExitStatus.USAGE, str(exc))
    errors = sys.modules.get("chain.errors")
    if errors is None:
        return None
    if isinstance(exc, errors.ChainRevert):
        return Failure(
            ExitStatus.CHAIN_ERROR, str(exc), details={"revert": exc.name, "args": exc.args_}
        )
    if isinstance(exc, errors.InsufficientFunds):
        return Failure(
            ExitStatus.CHAIN_ERROR,
            str(exc),
            details={
                "error_type": "InsufficientFunds",
                "address": exc.address,
                "balance": str(exc.balance),
                "needed": str(exc.needed),
            },
        )
    if isinstance(exc, errors.ChainUnavailable):
        return Failure(ExitStatus.CHAIN_ERROR, str(exc), True)
    if isinstance(exc, errors.ChainUsageError):
        return Failure(ExitStatus.USAGE, str(exc))
    if isinstance(exc, errors.ChainError):
        return Failure(ExitStatus.CHAIN_ERROR, str(exc), details={"error_type": type(exc).__name__})
    return None


def _classify_transfer(exc: BaseException) -> Failure | None:
    """Errors of the transfer engine. ``retryable`` comes from the error itself: only where
    re-running can succeed (a peer went away, timed out) does the message say to re-run."""
    import trio

    from node.transfer import (
        ChunkRootsMismatch,
        ContentNotFound,
        CorruptChunk,
        InvalidArgument,
        ManifestMismatch,
        RemoteTransferError,
        TransferError,
    )

    if isinstance(exc, NodeError):
        return exc.failure
    if isinstance(exc, InvalidArgument):
        return Failure(ExitStatus.USAGE, str(exc))
    if isinstance(exc, ContentNotFound):
        return Failure(ExitStatus.NOT_FOUND, str(exc), exc.retryable)
    if isinstance(exc, CorruptChunk):
        return Failure(
            ExitStatus.VERIFY_FAILED,
            f"{exc}; nothing of it was written; the peer was dropped",
            details={"bad_chunks": [exc.index], "peer": str(exc.peer)},
        )
    if isinstance(exc, (ChunkRootsMismatch, ManifestMismatch)):
        return Failure(ExitStatus.VERIFY_FAILED, str(exc))
    if isinstance(exc, RemoteTransferError):
        hint = "; re-run the same command to resume" if exc.retryable else ""
        return Failure(ExitStatus.PEER_ERROR, f"{exc}{hint}", exc.retryable)
    if isinstance(exc, trio.TooSlowError):
        return Failure(
            ExitStatus.PEER_ERROR,
            "a peer stopped answering (timed out); re-run the same command to resume",
            True,
        )
    if isinstance(exc, TransferError):
        return Failure(ExitStatus.ERROR, str(exc), exc.retryable)
    return None


class NotInitialised(Exception):
    """The data directory has no config.toml (a NotFound: exit 3)."""


def _classify_local(exc: BaseException, data_dir: Path | None) -> Failure | None:
    """The store, identity, config and file-system errors every command can meet."""
    import sys as _sys

    seal = _sys.modules.get("node.seal")  # encrypted content (docs/encryption.md)
    if seal is not None and isinstance(exc, seal.SealError):
        usage = isinstance(exc, (seal.WrongKey, seal.NotSealed, seal.BadKey))
        return Failure(ExitStatus.USAGE if usage else ExitStatus.VERIFY_FAILED, str(exc))
    from node._fs import OutputReplaced, is_no_space
    from node.config import ConfigError
    from node.content import ContentError
    from node.identity import (
        IdentityError,
        IdentityExists,
        IdentityNotFound,
        NoPassphrase,
        WrongPassphrase,
    )
    from node.store import (
        CorruptChunk,
        CorruptSlot,
        IncompleteContent,
        NotFound,
        StoreError,
        StoreFull,
        StoreLocked,
    )

    if isinstance(exc, IncompleteContent):
        return Failure(ExitStatus.NOT_FOUND, str(exc), details={"missing_chunks": exc.missing})
    if isinstance(exc, (NotFound, NotInitialised)):
        return Failure(ExitStatus.NOT_FOUND, str(exc))
    if isinstance(exc, CorruptChunk):
        from node.content import root_hex

        return Failure(
            ExitStatus.VERIFY_FAILED,
            f"{exc}; re-fetch the content (`bcai get`) or `bcai rm` it",
            details={"root": root_hex(exc.root), "bad_chunks": [exc.index]},
        )
    if isinstance(exc, CorruptSlot):
        return Failure(ExitStatus.VERIFY_FAILED, str(exc))
    if isinstance(exc, StoreFull) or is_no_space(exc):
        return Failure(
            ExitStatus.UNAVAILABLE,
            f"disk full: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
            f"{_where(exc)}; the store stays consistent and keeps every verified chunk; free "
            "space (or lower cache_quota and run `bcai gc`) and re-run",
        )
    if isinstance(exc, (StoreLocked, StoreError)) and _read_only(exc):
        # LevelDB reports a read-only LOCK file as a lock failure: say what it really is.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _read_only(exc)
        where = f" {data_dir}" if data_dir is not None else ""
        return Failure(
            ExitStatus.UNAVAILABLE,
            f"the data directory{where} is read-only or not writable ({reason}); "
            "bcai needs to write its store even to read it",
        )
    if isinstance(exc, StoreLocked):
        return Failure(ExitStatus.UNAVAILABLE, str(exc), True)
    if isinstance(exc, WrongPassphrase):
        return Failure(ExitStatus.USAGE, str(exc))
    if isinstance(exc, IdentityNotFound):
        return Failure(ExitStatus.NOT_FOUND, f"{exc}; run `bcai init`")
    if isinstance(exc, (ConfigError, ContentError, NoPassphrase, IdentityExists)):
        return Failure(ExitStatus.USAGE, str(exc))
    if isinstance(exc, OutputReplaced):
        return Failure(ExitStatus.UNAVAILABLE, f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, FileNotFoundError):
        return Failure(ExitStatus.NOT_FOUND, f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, IsADirectoryError):
        return Failure(ExitStatus.USAGE, f"{exc.filename}: is a directory")
    if isinstance(exc, OSError) and _read_only(exc):
        return Failure(ExitStatus.UNAVAILABLE, f"{exc.filename}: {exc.strerror}")
    if isinstance(exc, StoreError) and isinstance(exc, ValueError):  # the caller's wrong value
        return Failure(ExitStatus.USAGE, str(exc))  # (SlotMismatch, InvalidChunkRoots)
    if isinstance(exc, (StoreError, IdentityError)):
        return Failure(ExitStatus.ERROR, str(exc))
    return None


__all__ = [
    "ExitStatus",
    "Failure",
    "NodeError",
    "NotInitialised",
    "classify",
    "clean_message",
    "leaf",
]
