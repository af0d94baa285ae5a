"""Map backend-specific failures to the package's own errors, at the edge.

- py-evm (eth-tester) raises ``eth_tester.exceptions.TransactionFailed("execution reverted:
  b'...'")``: the raw revert data is the Python ``repr`` of the bytes, or the decoded reason for
  ``Error(string)``.
- web3 on an RPC node (anvil) raises ``ContractCustomError`` / ``ContractPanicError`` /
  ``ContractLogicError`` with ``.data`` as 0x-hex (or a dict on some nodes).
- Connection failures (``requests`` errors, ``ProviderConnectionError``, timeouts) become
  ``ChainUnavailable``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .contracts import decode_revert
from .errors import ChainError, ChainRevert, ChainUnavailable, revert_class

__all__ = ["map_errors", "translate", "wrap"]

T = TypeVar("T")
_PREFIX = "execution reverted"
_UNAVAILABLE = {
    "ConnectionError",
    "ProviderConnectionError",
    "Timeout",
    "ReadTimeout",
    "ConnectTimeout",
    "TimeExhausted",
    "RemoteDisconnected",
    "ConnectionRefusedError",
}


def _hex_data(data: Any) -> bytes | None:
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, bytes):
        return data
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def _from_tester_message(message: str) -> ChainRevert:
    text = message
    if text.startswith(_PREFIX):
        text = text[len(_PREFIX) :].lstrip(": ")
    if text.startswith(("b'", 'b"')):
        try:
            raw = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raw = None
        if isinstance(raw, bytes):
            return decode_revert(raw)
    if text:
        return revert_class("Error")("Error", {"reason": text}, b"", f"reverted: {text}")
    return decode_revert(b"")


def translate(exc: BaseException) -> ChainError | None:
    """The ``ChainError`` for ``exc``, or ``None`` if it is not a chain failure we know."""
    if isinstance(exc, ChainError):
        return exc
    name = type(exc).__name__
    module = type(exc).__module__
    if name == "TransactionFailed" and module.startswith("eth_tester"):
        return _from_tester_message(str(exc.args[0]) if exc.args else "")
    if name in {"ContractCustomError", "ContractPanicError", "ContractLogicError"}:
        raw = _hex_data(getattr(exc, "data", None))
        if raw:
            return decode_revert(raw)
        message = str(getattr(exc, "message", None) or exc)
        return _from_tester_message(message)
    if name in _UNAVAILABLE or isinstance(exc, ConnectionError | TimeoutError):
        return ChainUnavailable(f"chain did not answer: {exc}")
    return None


@contextmanager
def map_errors() -> Iterator[None]:
    """Re-raise chain failures inside the block as ``ChainError`` subclasses."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None or mapped is exc:
            raise
        raise mapped from None


def wrap(fn: Callable[[], T]) -> T:
    with map_errors():
        return fn()
