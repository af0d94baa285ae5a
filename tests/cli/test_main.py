"""The CLI frame: command routing, lazy command modules, exit codes."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

from node.cli import ExitStatus, main
from node.cli._main import COMMAND_INDEX, COMMAND_MODULES, build_parser


def _commands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def test_command_index_matches_what_modules_register() -> None:
    assert set(COMMAND_INDEX) == _commands(build_parser({}))
    for module in COMMAND_MODULES:
        own = {c for c, m in COMMAND_INDEX.items() if m == module}
        assert _commands(build_parser({}, (module,))) == own


def test_store_commands_do_not_import_web3() -> None:
    code = (
        "import sys; from node.cli._main import build_parser, _modules_for;"
        "build_parser({}, _modules_for(['add', 'x']));"
        "print('web3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_usage_errors_and_help() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main([], env={}, stdout=out, stderr=err) == ExitStatus.USAGE
    assert "COMMAND" in out.getvalue()
    assert main(["no-such-command"], env={}, stdout=out, stderr=err) == ExitStatus.USAGE
    assert main(["--help"], env={}, stdout=out, stderr=err) == ExitStatus.OK
