"""`bcai get -o FILE --link`: each received byte written once, into FILE; the store links to it.

Real `bcai serve` processes, real TCP on 127.0.0.1, the receiver in-process and as a daemon.
A changed FILE is damage the node finds and repairs from the peer; `rm` never touches FILE.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app import ExitStatus
from tests._procs import ServeProcess, cli, run

MiB = 1 << 20


def chunk_files(data: Path) -> list[Path]:
    return [p for p in (data / "store" / "chunks").glob("*/*") if p.is_file()]


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[tuple[ServeProcess, list[str], list[bytes]]]:
    prov = tmp_path / "prov"
    assert cli(prov, "init")[0] == 0
    roots, blobs = [], []
    for i in range(2):
        src = tmp_path / f"src{i}.bin"
        src.write_bytes(os.urandom(3 * MiB + 7))
        status, out, _ = cli(prov, "add", str(src))
        assert status == 0
        roots.append(out["root"])
        blobs.append(src.read_bytes())
    with ServeProcess(prov, "--no-chain") as server:
        yield server, roots, blobs


def test_linked_get_in_process_then_damage_and_repair(
    tmp_path: Path, provider: tuple[ServeProcess, list[str], list[bytes]]
) -> None:
    server, roots, blobs = provider
    recv = tmp_path / "recv"
    assert cli(recv, "init")[0] == 0
    out = tmp_path / "out.bin"
    status, res, err = cli(recv, "get", roots[0], "--peer", server.peer, "-o", str(out), "--link")
    assert status == 0, err
    assert out.read_bytes() == blobs[0] and res["fetched_chunks"] == 4
    assert chunk_files(recv) == []  # no second copy
    assert cli(recv, "verify", roots[0])[0] == 0
    # The user changes the file: the store's copy is damaged, and says so.
    with open(out, "r+b") as f:
        f.seek(MiB + 5)
        f.write(b"\x00" if blobs[0][MiB + 5] else b"\x01")
    status, _, _ = cli(recv, "verify", roots[0])
    assert status == ExitStatus.VERIFY_FAILED
    # A get of it repairs from the peer (into a chunk file of the store's own).
    other = tmp_path / "other.bin"
    status, res, err = cli(recv, "get", roots[0], "--peer", server.peer, "-o", str(other))
    assert status == 0, err
    assert other.read_bytes() == blobs[0] and res["fetched_chunks"] == 1
    assert len(chunk_files(recv)) == 1 and cli(recv, "verify", roots[0])[0] == 0
    # rm forgets the links, never the file.
    assert cli(recv, "rm", roots[0])[0] == 0
    assert cli(recv, "gc")[0] == 0
    assert out.exists() and other.read_bytes() == blobs[0]


def test_linked_get_through_the_daemon(
    tmp_path: Path, provider: tuple[ServeProcess, list[str], list[bytes]]
) -> None:
    server, roots, blobs = provider
    recv = tmp_path / "recv"
    assert cli(recv, "init")[0] == 0
    with ServeProcess(recv, "--no-chain", "--no-fsync"):
        out = tmp_path / "there.bin"
        proc = run(recv, "get", roots[1], "--peer", server.peer, "-o", str(out), "--link")
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() == blobs[1]
        assert chunk_files(recv) == []
        # Again onto the same file: already complete, the file is kept as it is (same inode).
        ino = out.stat().st_ino
        proc = run(recv, "get", roots[1], "-o", str(out), "--link")
        assert proc.returncode == 0, proc.stderr
        assert out.stat().st_ino == ino and out.read_bytes() == blobs[1]
        # Another content onto the linked file: refused, one line, nothing lost.
        proc = run(recv, "get", roots[0], "--peer", server.peer, "-o", str(out))
        assert proc.returncode == ExitStatus.UNAVAILABLE, proc.stdout + proc.stderr
        assert "links to" in proc.stdout and "Traceback" not in proc.stderr
        assert out.read_bytes() == blobs[1]
    assert cli(recv, "verify", roots[1])[0] == 0


def test_a_provider_that_added_with_link_serves_from_the_file(tmp_path: Path) -> None:
    prov = tmp_path / "prov"
    assert cli(prov, "init")[0] == 0
    src = tmp_path / "dataset.bin"
    src.write_bytes(os.urandom(2 * MiB + 3))
    status, out, err = cli(prov, "add", "--link", str(src))
    assert status == 0, err
    assert chunk_files(prov) == []  # the dataset is not copied into the store
    assert cli(prov, "ls")[1]["stats"]["linked_files"] == [str(src.resolve())]
    status, failed, _ = cli(prov, "add", "--link", "--encrypt", str(src))
    assert status == ExitStatus.USAGE and "--link" in failed["error"]
    recv = tmp_path / "recv"
    assert cli(recv, "init")[0] == 0
    with ServeProcess(prov, "--no-chain") as server:
        dst = tmp_path / "got.bin"
        status, res, err = cli(recv, "get", out["root"], "--peer", server.peer, "-o", str(dst))
        assert status == 0, err
        assert dst.read_bytes() == src.read_bytes() and res["fetched_chunks"] == 3
