"""structlog set-up shared by every entry point.

Logs go to stderr (stdout is kept for command output, so ``--json`` stays machine-readable).
Never log key material: the processors below drop any event key that looks like a secret.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, TextIO


def _import_structlog_without_rich() -> Any:
    """``import structlog``, without the ``rich`` it loads for pretty tracebacks when rich is
    installed (~4 MiB of every node process, daemon included, for exceptions in console
    logs): tracebacks in console logs are plain unless rich was imported already (the CLI's
    progress display imports it on its own when it draws)."""
    if "structlog" in sys.modules or "rich" in sys.modules:
        import structlog

        return structlog
    sys.modules["rich"] = None  # type: ignore[assignment]  # makes `import rich` fail
    try:
        import structlog
    finally:
        if sys.modules.get("rich", 0) is None:
            del sys.modules["rich"]
    return structlog


if TYPE_CHECKING:
    import structlog
else:
    structlog = _import_structlog_without_rich()

_SECRET_KEYS = frozenset(
    {"password", "passphrase", "private_key", "secret", "key_material", "seed"}
)


def _drop_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if key in _SECRET_KEYS:
            event[key] = "<redacted>"
    return event


def configure_logging(
    level: str = "info", *, json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog (and stdlib logging underneath) once per process."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    out = stream if stream is not None else sys.stderr
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def _default_to_stderr() -> None:
    # A library caller that never calls configure_logging would get structlog's default,
    # which prints to stdout and would spoil output meant for pipes (``bcai cat``).
    if not structlog.is_configured():
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


_default_to_stderr()
