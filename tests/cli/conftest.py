"""In-process CLI runner: node.cli.main with injected env and byte-capable streams."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.cli import main


@dataclass
class Result:
    status: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    @property
    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            "BCAI_HOME": str(home),
            "BCAI_INSECURE_FAST_KDF": "1",
            "BCAI_PASSPHRASE": "correct horse",
            "HOME": str(home.parent),
        }

    def __call__(self, *argv: str, stdin: bytes | None = None) -> Result:
        raw = io.BytesIO()
        stdout = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        stderr = io.StringIO()
        stdin_stream = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
        status = main(list(argv), env=self.env, stdout=stdout, stderr=stderr, stdin=stdin_stream)
        stdout.flush()
        return Result(int(status), raw.getvalue(), stderr.getvalue())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")


@pytest.fixture
def icli(cli: Cli) -> Cli:
    """A CLI whose data directory is already initialised."""
    r = cli("--json", "init")
    assert r.status == 0, r.err + r.text
    return cli
