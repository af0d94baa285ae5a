"""Crash safety: SIGKILL a real `bcai add` at many points; the store must always recover.

After every kill the store must open, hold no leftover job, temp file or orphan chunk file,
verify every content it lists, and a re-add must give the right root.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.cli import main
from node.content import hash_file
from node.store import Store, _index

from .conftest import CS, chunk_files, rand, tmp_files

REPO = Path(__file__).resolve().parents[2]
RUNS = 10


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BCAI_HOME=str(home), BCAI_INSECURE_FAST_KDF="1", BCAI_PASSPHRASE="test", PYTHONHASHSEED="0"
    )
    return env


def _init(home: Path) -> None:
    out = io.StringIO()
    status = main(["--json", "init"], env=_env(home), stdout=out, stderr=io.StringIO())
    assert status == 0, out.getvalue()


def _add_cmd(src: Path) -> list[str]:
    return [sys.executable, "-m", "node.cli", "--json", "add", "--chunk-size", "256KiB", str(src)]


def _check_consistent(store_dir: Path) -> set[bytes]:
    """Open (runs recovery), verify everything, and check nothing is left over."""
    with Store.open(store_dir) as s:
        assert list(_index.iter_prefix(s._db, _index.JOBS)) == []
        roots = set()
        referenced = set()
        for info in s.list_content():
            assert info.complete  # `add` never publishes partial content
            assert s.verify(info.root).ok
            roots.add(info.root)
            referenced.update(s.chunk_roots(info.root))
        on_disk = {bytes.fromhex(p.name) for p in chunk_files(store_dir)}
        assert on_disk == referenced
        assert tmp_files(store_dir) == []
        expected_used = sum(p.stat().st_size for p in chunk_files(store_dir))
        assert s.used_bytes == expected_used
    return roots


@pytest.mark.timeout(120)
def test_sigkill_during_add_always_recovers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _init(home)
    store_dir = home / "store"
    src = tmp_path / "big.bin"
    src.write_bytes(rand(36 * 1024 * 1024 + 12345, seed=11))
    expected = hash_file(src, chunk_size=CS).root
    env = _env(home)

    # One uninterrupted run calibrates the kill window (not asserted on).
    t0 = time.monotonic()
    done = subprocess.run(_add_cmd(src), env=env, cwd=REPO, capture_output=True, check=True)
    full = time.monotonic() - t0
    assert json.loads(done.stdout)["root"] == "0x" + expected.hex()
    with Store.open(store_dir) as s:
        s.remove(expected)

    rng = random.Random(20240611)
    outcomes = []
    for run in range(RUNS):
        proc = subprocess.Popen(
            _add_cmd(src), env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        if run % 2 == 0:
            time.sleep(rng.uniform(0.0, full))  # anywhere, start-up and recovery included
        else:
            # Wait for the first chunk write, then kill somewhere inside the add itself.
            deadline = time.monotonic() + 30
            while not tmp_files(store_dir) and not chunk_files(store_dir):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, full / 3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        outcomes.append(proc.returncode)
        roots = _check_consistent(store_dir)
        assert roots <= {expected}
        if roots and run < RUNS - 1:
            with Store.open(store_dir) as s:  # start the next run from an empty store
                s.remove(expected)

    assert -signal.SIGKILL in outcomes  # at least some runs really were killed mid-way
    with Store.open(store_dir) as s:
        m = s.add_file(src, chunk_size=CS)
        assert m.root == expected
        assert s.verify(m.root).ok
    _check_consistent(store_dir)
