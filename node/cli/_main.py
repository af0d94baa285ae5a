"""Argument parsing, the shared command context and exit codes."""

from __future__ import annotations

import argparse
import importlib
import json as _json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from node.app import ExitStatus, Failure, classify, clean_message, leaf

#: Sub-command modules, in help order. A module that does not exist yet is skipped.
COMMAND_MODULES = ("_store_cmds", "_net_cmds", "_chain_cmds", "_demo")

#: Which module registers each top-level command. ``main`` imports only the module of the
#: command being run (web3 alone takes seconds to import; ``bcai add`` should not pay for it);
#: ``--help`` and unknown commands import them all. tests/cli/test_main.py keeps this in sync.
COMMAND_INDEX = {
    **dict.fromkeys(
        ("init", "add", "ls", "cat", "export", "verify", "pin", "unpin", "rm", "gc"),
        "_store_cmds",
    ),
    **dict.fromkeys(("serve", "get", "status", "limits"), "_net_cmds"),
    **dict.fromkeys(
        ("chain", "publish", "receipts", "escrow", "host", "prove", "rewards"), "_chain_cmds"
    ),
    "demo": "_demo",
}


Handler = Callable[["Context", argparse.Namespace], ExitStatus]

#: Maps one (leaf) exception to an exit status by calling ``ctx.fail``; None: not ours.
Classifier = Callable[["Context", BaseException], "ExitStatus | None"]


@dataclass
class Context:
    """What every command handler gets: streams, environment, output mode, data directory."""

    stdout: TextIO
    stderr: TextIO
    env: Mapping[str, str]
    json: bool
    data_dir: Path
    stdin: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: configures logging (structlog) for this run; see :func:`defers_logging`
    log_setup: Callable[[], None] | None = None

    def setup_logging(self) -> None:
        """Configure logging now (once); a no-op for a context that was never given it."""
        setup, self.log_setup = self.log_setup, None
        if setup is not None:
            setup()

    def emit(self, obj: Any, text: str | None = None) -> None:
        """Print a result: ``obj`` as one JSON document with ``--json``, else ``text``."""
        if self.json:
            self.stdout.write(_json.dumps(obj, sort_keys=True, default=str) + "\n")
        elif text is not None:
            self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def fail(
        self, status: ExitStatus, message: str, *, retryable: bool = False, **details: Any
    ) -> ExitStatus:
        """Report an error (JSON on stdout with ``--json``, one line on stderr) and return status.

        ``retryable`` says whether re-running the same command unchanged can succeed (a peer
        went away, the store is busy); every JSON error carries it.
        """
        message = clean_message(message)
        if self.json:
            payload = {
                "error": message,
                "status": status.name.lower(),
                "retryable": retryable,
                **details,
            }
            self.stdout.write(_json.dumps(payload, sort_keys=True, default=str) + "\n")
            self.stdout.flush()
        else:
            self.stderr.write(f"bcai: error: {message}\n")
            self.stderr.flush()
        return status

    def fail_with(self, failure: Failure) -> ExitStatus:
        """Report a :class:`node.app.Failure` (from ``classify`` or a daemon's answer)."""
        return self.fail(
            failure.status, failure.message, retryable=failure.retryable, **failure.details
        )

    @property
    def is_tty(self) -> bool:
        isatty = getattr(self.stdout, "isatty", None)
        return bool(isatty and isatty())


def guard(handler: Handler, classify_extra: Classifier | None = None) -> Handler:
    """Map the library's typed errors to exit codes and one-line messages, for every command.

    A trio ``ExceptionGroup`` is unwrapped to the error that caused it, so a full disk in a
    worker thread reads the same as one in the main thread; the mapping itself is
    :func:`node.app.classify`, shared with the daemon's API. Anything unclassified propagates:
    a traceback and exit 1 mean a bug. (Here rather than with the store commands: ``bcai get``
    through a running node must not import the store to register its handler.)
    """

    def run(ctx: Context, args: argparse.Namespace) -> ExitStatus:
        try:
            return handler(ctx, args)
        except BaseException as exc:
            err = leaf(exc)
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise err from None
            if isinstance(err, Exception):
                status = classify_extra(ctx, err) if classify_extra is not None else None
                if status is not None:
                    return status
                failure = classify(err, ctx.data_dir)
                if failure is not None:
                    return ctx.fail_with(failure)
            raise

    run.__doc__ = handler.__doc__
    return run


def defers_logging(handler: Handler) -> Handler:
    """Mark ``handler`` as one that calls ``ctx.setup_logging()`` itself, only on the paths
    that log. structlog (with rich and pygments under it) is ~0.15 s of imports: ``bcai get``
    through a running node logs nothing here and should not pay for it."""
    handler.defers_logging = True  # type: ignore[attr-defined]
    return handler


def default_data_dir(env: Mapping[str, str]) -> Path:
    if "BCAI_HOME" in env:
        return Path(env["BCAI_HOME"])
    return Path(env.get("HOME", "~")).expanduser() / ".bcai"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bcai-transfer")
    except PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked (importlib.metadata costs ~10 ms to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(f"bcai {_version()}\n")  # where argparse's "version" action writes
        parser.exit()


def _modules_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules needed to parse ``argv``: the first command word's, else all."""
    for token in argv:
        if token in ("-h", "--help"):
            break
        if token in COMMAND_INDEX:
            return (COMMAND_INDEX[token],)
    return COMMAND_MODULES


def build_parser(
    env: Mapping[str, str], modules: Sequence[str] = COMMAND_MODULES
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bcai",
        description="Move very large data between peers, verified, with receipts on chain.",
    )
    parser.add_argument(
        "-d",
        "--data-dir",
        type=Path,
        default=default_data_dir(env),
        help="node data directory (default: $BCAI_HOME or ~/.bcai)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--log-level", default=env.get("BCAI_LOG_LEVEL", "warning"), help="debug|info|warning|error"
    )
    parser.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(f"node.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"node.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: Any = None,
) -> ExitStatus:
    env = dict(os.environ) if env is None else env
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(env, _modules_for(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return ExitStatus.OK if exc.code == 0 else ExitStatus.USAGE

    def log_setup() -> None:
        from node.log import configure_logging

        configure_logging(args.log_level, json=args.log_json, stream=stderr)

    handler: Handler | None = getattr(args, "handler", None)
    ctx = Context(
        stdout=stdout,
        stderr=stderr,
        env=env,
        json=args.json,
        data_dir=args.data_dir,
        stdin=stdin if stdin is not None else sys.stdin,
        log_setup=log_setup,
    )
    if not getattr(handler, "defers_logging", False):
        ctx.setup_logging()
    if handler is None:
        parser.print_help(stdout)
        return ExitStatus.USAGE
    try:
        return handler(ctx, args)
    except KeyboardInterrupt:
        return ctx.fail(
            ExitStatus.INTERRUPTED, "interrupted; re-run the same command to resume", retryable=True
        )
