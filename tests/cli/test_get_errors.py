"""`bcai get` against peers it cannot use: one line on stderr, exit 5, and `retryable` true
only where running the same command again can succeed."""

from __future__ import annotations

import io
import json
from pathlib import Path

from node.cli import main
from tests._procs import ENV, ServeProcess, cli

ROOT = "0x" + "ab" * 32
OTHER = "0x" + "11" * 20


def _get(data: Path, *args: str, json: bool) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["-d", str(data), *(["--json"] if json else []), "get", ROOT, *args]
    status = main(argv, env=ENV, stdout=out, stderr=err)
    return int(status), out.getvalue(), err.getvalue()


def test_unreachable_peers_fail_once_with_the_right_retryable(tmp_path: Path) -> None:
    data = tmp_path / "n"
    assert cli(data, "init")[0] == 0
    cases = [
        (f"nosuchhost.invalid:7000/{OTHER}", False, "PeerUnresolvable"),
        (f"127.0.0.1:9/{OTHER}", True, "PeerDisconnected"),
    ]
    for peer, retryable, kind in cases:
        status, out, err = _get(data, "--peer", peer, json=True)
        assert status == 5
        obj = json.loads(out)
        assert obj["retryable"] is retryable and kind in obj["error"]
        assert err == ""  # nothing else: no warning line beside the error
        status, out, err = _get(data, "--peer", peer, json=False)
        lines = err.strip().splitlines()
        assert status == 5 and len(lines) == 1 and lines[0].startswith("bcai: error:"), err
        assert ("re-run the same command" in lines[0]) is retryable


def test_identity_mismatch_is_not_retryable(tmp_path: Path) -> None:
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    assert cli(prov, "init")[0] == 0 and cli(recv, "init")[0] == 0
    with ServeProcess(prov) as server:
        wrong = f"{server.info['listen']}/{OTHER}"
        status, out, err = _get(recv, "--peer", wrong, json=True)
        obj = json.loads(out)
        assert status == 5 and obj["retryable"] is False, obj
        assert "PeerIdentityMismatch" in obj["error"] and err == ""
