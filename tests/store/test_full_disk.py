"""A full disk: the add fails with StoreFull and the store stays consistent and usable."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import main
from node.store import Store, StoreFull, _index

from .conftest import CS, chunk_files, rand, tmp_files

REPO = Path(__file__).resolve().parents[2]


def _assert_consistent(store: Store) -> None:
    assert list(_index.iter_prefix(store._db, _index.JOBS)) == []
    referenced: set[bytes] = set()
    for info in store.list_content():
        assert store.verify(info.root).ok
        referenced.update(store.chunk_roots(info.root))
    assert {bytes.fromhex(p.name) for p in chunk_files(store.path)} == referenced


def test_enospc_on_a_tiny_tmpfs(small_tmpfs: Path) -> None:
    path = small_tmpfs / "store"
    keep = rand(2 * CS, 1)
    with Store.open(path) as s:
        kept = s.add_bytes(keep, chunk_size=CS)
        with pytest.raises(StoreFull):
            s.add_bytes(rand(8 << 20, 2), chunk_size=CS)
        _assert_consistent(s)
        assert tmp_files(path) == []
        assert s.used_bytes == len(keep)
    with Store.open(path) as s:  # reopens; the old content is intact; small adds still work
        _assert_consistent(s)
        assert b"".join(s.iter_verified(kept.root)) == keep
        s.add_bytes(b"still room", chunk_size=CS)


def _limit_file_size() -> None:
    # Writes past 512 KiB fail with EFBIG instead of killing the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))


def test_file_size_limit_in_a_cli_subprocess(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = dict(os.environ, BCAI_HOME=str(home), BCAI_INSECURE_FAST_KDF="1", BCAI_PASSPHRASE="x")
    assert main(["init"], env=env, stdout=io.StringIO(), stderr=io.StringIO()) == 0
    small = tmp_path / "small.bin"
    small.write_bytes(rand(CS, 3))
    big = tmp_path / "big.bin"
    big.write_bytes(rand(4 << 20, 4))
    out = io.StringIO()
    assert main(["--json", "add", "--chunk-size", "256KiB", str(small)], env=env, stdout=out) == 0
    small_root = json.loads(out.getvalue())["root"]
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "--json", "add", "--chunk-size", "1MiB", str(big)],
        env=env,
        cwd=REPO,
        capture_output=True,
        preexec_fn=_limit_file_size,
        check=False,
    )
    assert proc.returncode == 7, proc.stderr.decode()  # UNAVAILABLE
    err = json.loads(proc.stdout)
    assert "disk full" in err["error"]
    with Store.open(home / "store") as s:
        _assert_consistent(s)
        assert [i.manifest.root_hex for i in s.list_content()] == [small_root]
    with contextlib.suppress(FileNotFoundError):
        assert tmp_files(home / "store") == []
