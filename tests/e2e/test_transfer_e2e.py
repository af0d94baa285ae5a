"""End to end: real `bcai serve` and `bcai get` processes on 127.0.0.1.

Checks the content arrives with the right root and sha256 for edge sizes, that a chunk
corrupted on the provider's disk is caught by the receiver (nothing corrupt written,
VERIFY_FAILED) and quarantined by the provider, and that
a receiver SIGKILLed mid-transfer resumes and fetches only what was not yet stored.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.cli import main
from node.store import Store
from tests._procs import ServeProcess

ENV = {**os.environ, "BCAI_INSECURE_FAST_KDF": "1", "BCAI_PASSPHRASE": "e2e-pass"}
MiB = 1 << 20


def bcai(
    data: Path, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(data), "--json", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"bcai {args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def write_random(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 4 * MiB))
            f.write(block)
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * MiB):
            h.update(block)
    return h.hexdigest()


class Server(ServeProcess):
    """``bcai serve`` in its own process (tests/_procs.py), with this module's passphrase."""

    def __init__(self, data: Path) -> None:
        super().__init__(data, env=ENV)


def cli(data: Path, *args: str) -> dict:
    """Run a quick command in-process (init, add): only serve and get need real processes."""
    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *args], env=ENV, stdout=out, stderr=err)
    assert status == 0, out.getvalue() + err.getvalue()
    return json.loads(out.getvalue().splitlines()[-1])


@dataclass
class Provider:
    data: Path
    server: Server
    files: dict[str, tuple[str, str, Path]]  # name -> (root, sha256, source path)


SIZES = {"empty": 0, "one": 1, "five": 5 * MiB + 1, "corrupt": 3 * MiB, "resume": 24 * MiB}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """One provider node for the module: every test file added first, then `bcai serve`."""
    base = tmp_path_factory.mktemp("provider")
    data = base / "node"
    cli(data, "init")
    files: dict[str, tuple[str, str, Path]] = {}
    for name, size in [*SIZES.items(), ("big", 256 * MiB)]:
        src = base / f"{name}.bin"
        digest = write_random(src, size)
        files[name] = (cli(data, "add", str(src))["root"], digest, src)
    _corrupt(data, files["corrupt"][0], 1)
    server = Server(data)
    yield Provider(data, server, files)
    assert server.stop() == 0, "serve must shut down cleanly on SIGTERM"


@pytest.fixture
def receiver(tmp_path: Path) -> Path:
    data = tmp_path / "receiver"
    cli(data, "init")
    return data


@pytest.mark.parametrize("name", ["empty", "one", "five"])
def test_get_edge_sizes(provider: Provider, receiver: Path, tmp_path: Path, name: str) -> None:
    root, digest, _ = provider.files[name]
    size = SIZES[name]
    out = tmp_path / "out.bin"
    result = json.loads(
        bcai(receiver, "get", root, "--peer", provider.server.peer, "-o", str(out)).stdout
    )
    assert result["root"] == root and result["size"] == size
    assert sha256_file(out) == digest
    expected_chunks = -(-size // MiB)
    assert result["fetched_chunks"] == expected_chunks
    if expected_chunks:
        (prov,) = result["providers"]
        assert prov["address"] == provider.server.address and prov["receipt_acked"]
    status = cli(receiver, "status")
    assert status["contents"]["count"] >= 1 and status["running"] is False
    assert root in [c["root"] for c in cli(receiver, "ls")["content"]]


@pytest.mark.slow
def test_get_256mib(provider: Provider, receiver: Path, tmp_path: Path) -> None:
    root, digest, _src = provider.files["big"]
    out = tmp_path / "out.bin"
    t0 = time.monotonic()
    result = json.loads(
        bcai(receiver, "get", root, "--peer", provider.server.peer, "-o", str(out)).stdout
    )
    assert time.monotonic() - t0 < 60
    assert result["fetched_bytes"] == 256 * MiB
    assert sha256_file(out) == digest
    out.unlink()


def _corrupt(data: Path, root: str, index: int) -> None:
    with Store.open(data / "store") as store:
        r = bytes.fromhex(root[2:])
        path = store._files.path(store.chunk_root_at(r, index))
    raw = bytearray(path.read_bytes())
    raw[12345] ^= 0x55
    path.write_bytes(bytes(raw))


def test_corrupt_chunk_detected(provider: Provider, receiver: Path, tmp_path: Path) -> None:
    # A chunk's first read is not hashed by the provider (docs/store.md, memory tier): the
    # receiver catches the damage (VERIFY_FAILED) and the provider quarantines the chunk.
    root = provider.files["corrupt"][0]
    out = tmp_path / "out.bin"
    proc = bcai(receiver, "get", root, "--peer", provider.server.peer, "-o", str(out), check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # VERIFY_FAILED
    err = json.loads(proc.stdout)
    assert err["bad_chunks"] == [1] and "verification" in err["error"]
    provider.server.wait_log("stored chunk damaged: quarantined")
    assert not out.exists()
    with Store.open(receiver / "store") as store:
        assert 1 in set(store.missing_chunks(bytes.fromhex(root[2:])))


def test_sigkill_then_resume(provider: Provider, receiver: Path, tmp_path: Path) -> None:
    root, digest, _ = provider.files["resume"]
    n = SIZES["resume"] // MiB
    out = tmp_path / "out.bin"
    cmd = [
        sys.executable,
        "-m",
        "node.cli",
        "-d",
        str(receiver),
        "--json",
        "get",
        root,
        "--peer",
        provider.server.peer,
        "-o",
        str(out),
        "--limit-rate",
        "4M",
    ]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Wait until the receiver has written several chunk files, then kill it without warning.
    # Files are written before their group commits (every 16 MiB or 0.5 s); 8 files at
    # 4 MB/s is ~2 s, so at least one group is committed and the kill lands mid-transfer.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if _present_without_lock(receiver) >= 8:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    written = _present_without_lock(receiver)  # files on disk, committed or not
    with Store.open(receiver / "store") as store:
        missing = set(store.missing_chunks(bytes.fromhex(root[2:])))
    present = n - len(missing)
    assert 0 < present < n, "the kill must land mid-transfer"
    assert written - present <= 16 + 3, "lost more than the uncommitted group"
    result = json.loads(
        bcai(receiver, "get", root, "--peer", provider.server.peer, "-o", str(out)).stdout
    )
    # Only what was not committed is fetched again: the chunks in flight at the kill and the
    # uncommitted group (< 16 MiB + 3 chunks; docs/store.md).
    assert result["resumed_chunks"] == present
    assert result["fetched_chunks"] == len(missing)
    assert sha256_file(out) == digest


def _present_without_lock(data: Path) -> int:
    """Count chunk files the receiver has written (the store is locked by the running get)."""
    chunks = data / "store" / "chunks"
    return sum(1 for _ in chunks.rglob("*") if _.is_file()) if chunks.exists() else 0


def test_ctrl_c_pays_for_what_arrived(tmp_path: Path) -> None:
    """Ctrl-C mid-transfer: the receiver still signs a receipt for the verified chunks it
    stored, and the provider's outbox holds receipts for exactly those bytes (before, an
    interrupted transfer earned the provider nothing)."""
    from node.transfer import ReceiptBox

    prov = tmp_path / "provider"
    cli(prov, "init")
    src = tmp_path / "src.bin"
    write_random(src, 24 * MiB)
    root = cli(prov, "add", str(src))["root"]
    server = Server(prov)
    receiver = tmp_path / "receiver"
    cli(receiver, "init")
    try:
        cmd = [sys.executable, "-m", "node.cli", "-d", str(receiver), "--json", "get", root,
               "--peer", server.peer, "--limit-rate", "4M"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if _present_without_lock(receiver) >= 6:
                break
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130  # INTERRUPTED
    finally:
        assert server.stop() == 0
    with Store.open(receiver / "store") as store:
        r = bytes.fromhex(root[2:])
        missing = set(store.missing_chunks(r))
    present = 24 - len(missing)
    assert 0 < present < 24, "the interrupt must land mid-transfer"
    with ReceiptBox.open(prov / "receipts") as box:
        receipts = [s.receipt for s in box.pending()]
    assert sum(r.bytes_served for r in receipts) == present * MiB
    assert sum(r.chunks for r in receipts) == present
    assert all(r.payment > 0 for r in receipts)
