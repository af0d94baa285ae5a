"""Encryption at rest end to end (issue 12's acceptance), in real processes over real TCP:

* A adds a file with ``--encrypt``; B fetches its root *without the key* through a recording TCP
  proxy; no file under A's or B's data directory and no byte on the wire holds a plaintext
  marker (a control store that added the plaintext does hold it, so the grep can fail);
* B builds its slot of the encrypted root and answers a data-availability challenge on the
  embedded chain from it (a host that never had the key);
* A, through its running daemon (client-side decryption: the daemon never sees the key), and a
  third node C, with ``get --key-file``, get back the plaintext exactly; a wrong key is exit 2
  with one line and no output file; the key is in no log.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.app import ExitStatus, open_node
from node.content import SlotLayout, encode_slot_roots, root_hex, slot_root_proof, tree_hash
from node.seal import ContentKey, parse_header, write_key_file
from tests._procs import ENV, ServeProcess, cli, run

MiB = 1 << 20
MARKER = b"SEAL-E2E-PLAINTEXT-MARKER-7f3a"


class RecordingProxy:
    """127.0.0.1 TCP proxy to ``upstream``; records every byte in both directions."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.captured = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.connections += 1
            for src, dst in ((client, server), (server, client)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                with self._lock:
                    self.captured += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing = True
        self.sock.close()
        for t in self._threads:
            t.join(timeout=10)


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every regular file under ``root`` whose bytes contain ``needle``."""
    hits = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(str(path.relative_to(root)))
    return hits


def plaintext(path: Path, size: int) -> bytes:
    """Random bytes with the marker at the start, across the 1 MiB chunk boundary and the
    64 KiB record boundaries, and at the end."""
    data = bytearray(os.urandom(size))
    for off in (0, MiB - 7, 3 * 65536 - 5, size // 2, size - len(MARKER)):
        data[off : off + len(MARKER)] = MARKER
    path.write_bytes(bytes(data))
    return bytes(data)


def _init(data: Path) -> None:
    status, _, err = cli(data, "init")
    assert status == 0, err


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, Path]]:
    dirs = {n: tmp_path / n for n in ("a", "b", "c", "control")}
    for d in dirs.values():
        _init(d)
    yield dirs


def test_encrypted_content_is_moved_hosted_and_proven_as_ciphertext_only(
    tmp_path: Path, nodes: dict[str, Path]
) -> None:
    a, b, c, control = nodes["a"], nodes["b"], nodes["c"], nodes["control"]
    data = plaintext(tmp_path / "plain.bin", 3 * MiB + 12345)
    key_file = tmp_path / "content.key"
    status, added, err = cli(
        a, "add", "--encrypt", "--key-file", str(key_file), str(tmp_path / "plain.bin")
    )
    assert status == 0, err
    root = added["root"]
    assert added["encrypted"] and added["key_created"] and added["name"] == ""
    assert added["media_type"] == "application/vnd.bcai.sealed"
    assert added["plaintext_size"] == len(data)
    assert added["plaintext_root"] == root_hex(tree_hash(data)) != root
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_text = key_file.read_text().strip()

    # The control: the same plaintext added unencrypted is found by the grep.
    status, plain_added, _ = cli(control, "add", str(tmp_path / "plain.bin"))
    assert status == 0
    assert files_holding(control, MARKER), "the grep must be able to find the marker"

    wrong_key = tmp_path / "wrong.key"
    write_key_file(wrong_key, ContentKey.generate())
    with ServeProcess(a) as server:
        host, port = server.info["listen"].rsplit(":", 1)
        proxy = RecordingProxy((host, int(port)))
        try:
            via_proxy = f"127.0.0.1:{proxy.port}/{server.address}"
            # B: a host, no key. Fetches the encrypted root through the proxy.
            got = run(b, "get", root, "--peer", via_proxy)
            assert got.returncode == 0, got.stderr
            # C: a receiver with the key: get decrypts into -o (its store keeps ciphertext).
            out_c = tmp_path / "c-out.bin"
            got_c = run(
                c, "get", root, "--peer", via_proxy, "--key-file", str(key_file), "-o", str(out_c)
            )
            assert got_c.returncode == 0, got_c.stderr
            assert out_c.read_bytes() == data
        finally:
            proxy.close()
        assert proxy.connections == 2 and len(proxy.captured) > 2 * added["size"]

        # A, through its running daemon: sealing and opening happen in the CLI process.
        out_a = tmp_path / "a-out.bin"
        status, exported, err = cli(
            a, "export", root, "--key-file", str(key_file), "-o", str(out_a)
        )
        assert status == 0, err
        assert out_a.read_bytes() == data and exported["plaintext_root"] == added["plaintext_root"]
        status, again, err = cli(
            a, "add", "--encrypt", "--key-file", str(key_file), str(tmp_path / "plain.bin")
        )
        assert status == 0, err
        assert again["root"] != root  # a fresh stream nonce: another ciphertext, same key
        assert not list((a / "run").glob(".sealed-*")), "the sealed temp file is removed"
        # A wrong key: exit 2, one line, no output written.
        out_bad = tmp_path / "bad.bin"
        status, failure, err = cli(
            a, "export", root, "--key-file", str(wrong_key), "-o", str(out_bad)
        )
        assert status == ExitStatus.USAGE and "wrong key" in failure["error"]
        assert "\n" not in failure["error"] and not out_bad.exists()
        assert server.stop() == 0

    assert MARKER not in proxy.captured
    assert files_holding(a, MARKER) == [] and files_holding(b, MARKER) == []
    assert files_holding(c, MARKER) == []
    for d in (a, b, c):
        assert files_holding(d, key_text.encode()) == [], "no key in any store or log"
    assert files_holding(a, key_text.split(":")[1].encode()) == []

    # B holds exactly the sealed stream; without the key it is opaque, with it exact.
    status, exported, _ = cli(b, "export", root, "-o", str(tmp_path / "b-sealed.bin"))
    assert status == 0
    sealed = (tmp_path / "b-sealed.bin").read_bytes()
    assert parse_header(sealed).kdf == 0 and tree_hash(sealed) == bytes.fromhex(root[2:])
    catted = run(b, "cat", root, "--key-file", str(wrong_key))
    assert catted.returncode == ExitStatus.USAGE and "wrong key" in catted.stdout
    cat_ok = subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(b), "cat", root, "--key-file", str(key_file)],
        env=ENV,
        capture_output=True,
        timeout=120,
    )
    assert cat_ok.returncode == 0 and cat_ok.stdout == data
    status, _, _ = cli(b, "export", plain_added["root"], "--key-file", str(key_file), "-o", "x")
    assert status == ExitStatus.NOT_FOUND  # not in B's store at all

    _b_answers_a_challenge_on_the_encrypted_root(a, b, bytes.fromhex(root[2:]))
    assert files_holding(b, MARKER) == []  # the slot files too
    assert any((b / "slots").rglob("*")), "B built a slot"


def _b_answers_a_challenge_on_the_encrypted_root(a: Path, b: Path, root: bytes) -> None:
    """Publish the encrypted root on an embedded chain (A's store); B, keyless, builds slot 0
    from its store, commits, and answers a scheduled challenge from its slot store."""
    from chain.backend import EmbeddedChain
    from chain.client import ChallengeStatus
    from tests.chain.conftest import build_world
    from tests.chain.scenario import next_period, reveal

    world = build_world(EmbeddedChain())
    owner, host, challenger = world.client(0), world.client(3), world.client(5)
    with open_node(a) as node_a:
        size = node_a.store.get_manifest(root).size
        owner.publish_content(node_a.store.reader(root), size, data_shards=4, slot_count=8)
    on_chain = owner.layout_of(root)
    layout = SlotLayout(on_chain.size, on_chain.data_shards, on_chain.slot_count)
    with open_node(b) as node_b:
        read = node_b.store.reader(root)
        slot_roots, slots_root = encode_slot_roots(read, layout)
        assert slots_root == on_chain.slots_root
        slot_root = node_b.slots.build(root, 0, layout, read, expected_slot_root=slot_roots[0])
        owner.fund_storage(root, 10**16)
        host.commit(root, 0, slot_root, slot_root_proof(slot_roots, 0), 10**17)
        next_period(world)
        _, ch = challenger.challenge(root, 0)
        ch = reveal(world, ch.id)
        assert ch.indices is not None
        proofs = node_b.slots.prove(root, 0, ch.indices)
        res = host.respond(ch.id, [s for s, _ in proofs], [p for _, p in proofs])
    assert res.event("ChallengePassed").args["id"] == ch.id
    assert host.get_challenge(ch.id).status is ChallengeStatus.PASSED


def test_encrypt_options_and_errors_in_process(tmp_path: Path, nodes: dict[str, Path]) -> None:
    a = nodes["a"]
    src = tmp_path / "f.bin"
    src.write_bytes(MARKER * 1000)
    # a new random key shown once (--json: "key"), stored nowhere in the data dir
    status, out, _ = cli(a, "add", "--encrypt", str(src))
    assert status == 0 and out["key"].startswith("seal1:")
    assert files_holding(a, out["key"].encode()) == []
    key = tmp_path / "k"
    key.write_text(out["key"] + "\n")
    dest = tmp_path / "back.bin"
    assert cli(a, "export", out["root"], "--key", out["key"], "-o", str(dest))[0] == 0
    assert dest.read_bytes() == src.read_bytes()
    # the empty file
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    status, e, _ = cli(a, "add", "--encrypt", "--key-file", str(key), str(empty))
    assert status == 0 and e["plaintext_size"] == 0 and e["size"] > 0
    assert cli(a, "export", e["root"], "--key-file", str(key), "-o", str(dest))[0] == 0
    assert dest.read_bytes() == b""
    # a passphrase (Argon2id: the fast parameters under BCAI_INSECURE_FAST_KDF)
    pw, bad_pw = tmp_path / "pw", tmp_path / "bad-pw"
    pw.write_text("a long passphrase\n")
    bad_pw.write_text("another one\n")
    status, p, _ = cli(a, "add", "--encrypt", "--content-passphrase-file", str(pw), str(src))
    assert status == 0 and "key" not in p
    status, fail, _ = cli(
        a, "export", p["root"], "--content-passphrase-file", str(bad_pw), "-o", str(dest)
    )
    assert status == ExitStatus.USAGE and "wrong passphrase" in fail["error"]
    status, fail, _ = cli(a, "export", p["root"], "--key-file", str(key), "-o", str(dest))
    assert status == ExitStatus.USAGE and "wrong key" in fail["error"]
    assert (
        cli(a, "export", p["root"], "--content-passphrase-file", str(pw), "-o", str(dest))[0] == 0
    )
    assert dest.read_bytes() == src.read_bytes()
    # a key for content that is not encrypted; bad key sources
    status, plain, _ = cli(a, "add", str(src))
    status, fail, _ = cli(a, "export", plain["root"], "--key-file", str(key), "-o", str(dest))
    assert status == ExitStatus.USAGE and "not encrypted" in fail["error"]
    for args in (
        ("add", "--key-file", str(key), str(src)),  # no --encrypt
        (
            "add",
            "--encrypt",
            "--key-file",
            str(key),
            "--content-passphrase-file",
            str(pw),
            str(src),
        ),
        ("export", out["root"], "--key", "seal1:nope", "-o", str(dest)),
        ("export", out["root"], "--key-file", str(tmp_path / "missing"), "-o", str(dest)),
        ("export", out["root"], "--key-file", str(src), "-o", str(dest)),
    ):
        status, fail, err = cli(a, *args)
        assert status == ExitStatus.USAGE, (args, fail, err)
        assert out["key"] not in fail["error"] and "nope" not in fail["error"]
    # the marker is only in the chunk file of the unencrypted add
    [hit] = files_holding(a, MARKER)
    assert hit.startswith("store/chunks/")
    with open_node(a) as node:
        manifest = node.store.get_manifest(bytes.fromhex(out["root"][2:]))
        assert (manifest.media_type, manifest.name) == ("application/vnd.bcai.sealed", "")
