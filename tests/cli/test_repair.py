"""Repairing damaged stored chunks through the CLI, with real `bcai serve` processes.

A receiver whose copy has a damaged chunk re-runs `bcai get` and fetches just that chunk; a
provider that finds its own copy damaged quarantines it in the store, so `bcai verify` names it
and a restarted `serve` still does not serve it: with the memory tier on (the default) it finds
the damage itself when it reads the chunk, before sending anything, and answers NotFound (the
receiver takes that chunk from another peer); with the tier off the receiver catches the bad
chunk and reports it (BAD_CHUNK), and the provider re-verifies and quarantines. Content
complete and verified locally is written by `get -o` without any peer.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

from node.cli import main
from node.content import parse_root
from node.store import Store
from tests._procs import ServeProcess

ENV = {**os.environ, "BCAI_INSECURE_FAST_KDF": "1", "BCAI_PASSPHRASE": "repair-pass"}
MiB = 1 << 20
SIZE = 3 * MiB + 5  # four chunks at the default 1 MiB


class Server(ServeProcess):
    """`bcai serve` on an ephemeral port of 127.0.0.1 (its log in ``serve.log``)."""

    def __init__(self, data: Path) -> None:
        super().__init__(data, env=ENV)


def bcai(data: Path, *args: str) -> tuple[int, dict]:
    """Run a command in-process; return its exit status and its (last) JSON line."""
    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *args], env=ENV, stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    return int(status), (json.loads(lines[-1]) if lines else {"stderr": err.getvalue()})


def node(tmp_path: Path, name: str, *, memory_cache: int | None = None) -> Path:
    data = tmp_path / name
    status, _ = bcai(data, "init")
    assert status == 0
    if memory_cache is not None:
        cfg = data / "config.toml"
        text = re.sub(r"(?m)^memory_cache = .*$", "", cfg.read_text())
        cfg.write_text(text.replace("[node]", f"[node]\nmemory_cache = {memory_cache}", 1))
    return data


def add(data: Path, src: Path) -> str:
    status, out = bcai(data, "add", str(src))
    assert status == 0, out
    return str(out["root"])


def damage(data: Path, root: str, index: int) -> bytes:
    """Flip a byte of a stored chunk file; return that chunk's root."""
    with Store.open(data / "store") as store:
        cr = store.chunk_root_at(parse_root(root), index)
        path = store._files.path(cr)
    raw = bytearray(path.read_bytes())
    raw[777] ^= 0x5A
    path.write_bytes(bytes(raw))
    return cr


def test_get_refetches_only_the_damaged_chunk_then_needs_no_peer(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(SIZE))
    provider = node(tmp_path, "provider")
    root = add(provider, src)
    receiver = node(tmp_path, "receiver")
    server = Server(provider)
    try:
        status, out = bcai(receiver, "get", root, "--peer", server.peer, "-o", str(tmp_path / "a"))
        assert status == 0, out
        cr = damage(receiver, root, 2)

        status, out = bcai(receiver, "verify", root)
        assert status == 4, out  # VERIFY_FAILED, naming the index and its chunk root
        assert out["bad_chunks"] == [2]
        assert out["damaged"] == [{"index": 2, "chunk_root": "0x" + cr.hex(), "reason": "corrupt"}]

        # The documented repair: get again. Only chunk 2 crosses the network.
        status, out = bcai(receiver, "get", root, "--peer", server.peer, "-o", str(tmp_path / "b"))
        assert status == 0, out
        assert out["fetched_chunks"] == 1 and out["resumed_chunks"] == 3
        assert (tmp_path / "b").read_bytes() == src.read_bytes()
        status, out = bcai(receiver, "verify", root)
        assert status == 0 and out["ok"], out
    finally:
        assert server.stop() == 0

    # Complete and verified here: no peer is contacted (the server is gone).
    status, out = bcai(receiver, "get", root, "--peer", server.peer, "-o", str(tmp_path / "c"))
    assert status == 0, out
    assert out["local"] is True and out["fetched_chunks"] == 0 and out["providers"] == []
    assert (tmp_path / "c").read_bytes() == src.read_bytes()
    # ...but a damaged local copy with no peer to repair from is not passed off as complete.
    damage(receiver, root, 0)
    status, out = bcai(receiver, "get", root, "--peer", server.peer, "-o", str(tmp_path / "d"))
    assert status != 0 and not (tmp_path / "d").exists(), out
    with Store.open(receiver / "store") as store:
        assert list(store.missing_chunks(parse_root(root))) == [0]


def test_provider_without_memory_tier_quarantines_after_a_bad_chunk_report(
    tmp_path: Path,
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(SIZE))
    provider = node(tmp_path, "provider", memory_cache=0)  # reads unverified: sends the damage
    root = add(provider, src)
    damage(provider, root, 1)
    server = Server(provider)
    try:
        status, out = bcai(node(tmp_path, "r1"), "get", root, "--peer", server.peer)
        assert status == 4 and out["bad_chunks"] == [1], out  # the receiver caught it
        server.wait_log("stored chunk damaged: quarantined")
    finally:
        assert server.stop() == 0
    with Store.open(provider / "store") as store:
        assert store.quarantined(parse_root(root)) == [1]


def test_provider_quarantine_survives_restart_and_get_repairs_it(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(SIZE))
    provider = node(tmp_path, "provider")  # the memory tier on: the default
    root = add(provider, src)
    cr = damage(provider, root, 1)
    honest = node(tmp_path, "honest")
    assert add(honest, src) == root

    server, other = Server(provider), Server(honest)
    try:
        r1 = node(tmp_path, "r1")
        status, out = bcai(r1, "get", root, "--peer", server.peer)
        # a chunk's first read is not hashed by the provider (the memory tier admits, and so
        # verifies, from a chunk's second read on: docs/store.md), so the receiver catches the
        # damage, stores nothing of it and reports BAD_CHUNK; the provider re-verifies and
        # quarantines the chunk
        assert status == 4 and out["bad_chunks"] == [1], out
        server.wait_log("stored chunk damaged: quarantined")
        with Store.open(r1 / "store") as store:
            # chunk 1 is missing; a chunk still in flight when the provider was dropped may be
            # too (the order chunks finish verifying in is the workers')
            missing = list(store.missing_chunks(parse_root(root)))
        assert 1 in missing, missing
        # the next fetch takes what is missing, chunk 1 from another peer
        status, out = bcai(r1, "get", root, "--peer", server.peer, "--peer", other.peer)
        assert status == 0 and out["fetched_chunks"] == len(missing), out
        assert out["resumed_chunks"] == 4 - len(missing), out
    finally:
        assert server.stop() == 0
        assert other.stop() == 0

    status, out = bcai(provider, "verify", root)
    assert status == 4, out
    assert out["quarantined_chunks"] == [1]
    assert {"index": 1, "chunk_root": "0x" + cr.hex(), "reason": "quarantined"} in out["damaged"]

    server = Server(provider)  # restarted: the quarantine comes from the index
    try:
        r2 = node(tmp_path, "r2")
        status, out = bcai(r2, "get", root, "--peer", server.peer)
        assert status != 0 and "bad_chunks" not in out, out  # refused, not served damaged
    finally:
        assert server.stop() == 0
    with Store.open(r2 / "store") as store:  # nothing of chunk 1 reached r2, the rest did
        assert list(store.missing_chunks(parse_root(root))) == [1]
        assert store.verify(parse_root(root)).ok

    # The provider repairs its copy from an honest peer: just the quarantined chunk.
    server = Server(honest)
    try:
        status, out = bcai(provider, "get", root, "--peer", server.peer)
        assert status == 0, out
        assert out["fetched_chunks"] == 1 and out["resumed_chunks"] == 3
    finally:
        assert server.stop() == 0
    status, out = bcai(provider, "verify", root)
    assert status == 0 and out["ok"] and out["quarantined_chunks"] == [], out
