"""The store commands end to end, in-process, through node.cli.main with --json."""

from __future__ import annotations

import random
from pathlib import Path

from node.cli import ExitStatus
from node.content import hash_file
from node.store import Store

from .conftest import Cli

CS = 256 * 1024


def _file(tmp_path: Path, size: int, seed: int = 0, name: str = "data.bin") -> Path:
    p = tmp_path / name
    p.write_bytes(random.Random(seed).randbytes(size))
    return p


def test_init_writes_keystore_config_and_store(cli: Cli) -> None:
    r = cli("--json", "init", "--cache-quota", "1GiB")
    assert r.status == ExitStatus.OK
    d = r.json
    assert d["address"].startswith("0x") and len(d["noise_public_key"]) == 64
    assert (cli.home / "keystore" / "account.json").exists()
    assert (cli.home / "store" / "index").is_dir()
    assert "cache_quota = 1073741824" in (cli.home / "config.toml").read_text()
    assert "correct horse" not in r.err + r.text
    again = cli("--json", "init")
    assert again.status == ExitStatus.USAGE and "already" in again.json["error"]
    assert cli("--json", "init", "--force").json["address"] != d["address"]


def test_init_without_passphrase_is_a_usage_error(cli: Cli) -> None:
    del cli.env["BCAI_PASSPHRASE"]
    r = cli("init")
    assert r.status == ExitStatus.USAGE and "passphrase" in r.err


def test_commands_need_init(cli: Cli, tmp_path: Path) -> None:
    r = cli("--json", "add", str(_file(tmp_path, 10)))
    assert r.status == ExitStatus.NOT_FOUND and "bcai init" in r.json["error"]


def test_add_cat_export_verify_roundtrip(icli: Cli, tmp_path: Path) -> None:
    for size in (0, 1, 4095, 4096, 4097, 3 * CS + 17):
        src = _file(tmp_path, size, seed=size)
        r = icli("--json", "add", "--chunk-size", "256KiB", "--media-type", "x/y", str(src))
        assert r.status == ExitStatus.OK, r.text
        m = r.json
        root = m["root"]
        assert root == "0x" + hash_file(src, chunk_size=CS).root.hex()
        assert (m["size"], m["name"], m["media_type"], m["pinned"]) == (
            size,
            "data.bin",
            "x/y",
            False,
        )
        plain = icli("add", "--chunk-size", "256KiB", str(src))
        assert plain.text == root + "\n"
        cat = icli("cat", root)
        assert cat.status == ExitStatus.OK and cat.out == src.read_bytes()
        out = tmp_path / "out" / f"{size}.bin"
        out.parent.mkdir(exist_ok=True)
        ex = icli("--json", "export", root, "-o", str(out))
        assert ex.status == ExitStatus.OK and ex.json["size"] == size
        assert out.read_bytes() == src.read_bytes()
        v = icli("--json", "verify", root)
        assert v.status == ExitStatus.OK and v.json["ok"] is True


def test_add_from_stdin(icli: Cli) -> None:
    data = random.Random(5).randbytes(CS + 3)
    r = icli("--json", "add", "--name", "piped", "-", stdin=data)
    assert r.status == ExitStatus.OK and r.json["name"] == "piped" and r.json["size"] == len(data)
    assert icli("cat", r.json["root"]).out == data


def test_ls_pin_unpin_gc(icli: Cli, tmp_path: Path) -> None:
    a = icli("--json", "add", "--pin", str(_file(tmp_path, 1000, 1, "a"))).json["root"]
    b = icli("--json", "add", str(_file(tmp_path, 2000, 2, "b"))).json["root"]
    ls = icli("--json", "ls").json
    by_root = {c["root"]: c for c in ls["content"]}
    assert by_root[a]["pinned"] and not by_root[b]["pinned"]
    assert by_root[b]["name"] == "b" and ls["stats"]["used_bytes"] == 3000
    text = icli("ls").text
    assert a in text and "pinned" in text
    assert icli("--json", "unpin", a).json == {"root": a, "pinned": False}
    assert icli("--json", "pin", b).json == {"root": b, "pinned": True}
    gc = icli("--json", "gc", "--unpinned")
    assert gc.status == ExitStatus.OK
    assert gc.json["removed"] == [a] and gc.json["bytes_freed"] == 1000
    assert [c["root"] for c in icli("--json", "ls").json["content"]] == [b]
    assert icli("--json", "gc").json["bytes_freed"] == 0


def test_corrupt_chunk_is_named_and_never_emitted(icli: Cli, tmp_path: Path) -> None:
    src = _file(tmp_path, 3 * CS, 7)
    root = icli("--json", "add", "--chunk-size", "256KiB", str(src)).json["root"]
    with Store.open(icli.home / "store") as s:
        rb = bytes.fromhex(root[2:])
        path = s._files.path(s.chunk_root_at(rb, 1))
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))

    v = icli("--json", "verify", root)
    assert v.status == ExitStatus.VERIFY_FAILED
    assert v.json["bad_chunks"] == [1] and v.json["status"] == "verify_failed"
    t = icli("verify", root)
    assert t.status == ExitStatus.VERIFY_FAILED and "bad chunks: 1" in t.err

    cat = icli("cat", root)
    assert cat.status == ExitStatus.VERIFY_FAILED
    assert cat.out == src.read_bytes()[:CS]  # the verified prefix only
    assert "chunk 1" in cat.err

    out = tmp_path / "exported.bin"
    ex = icli("--json", "export", root, "-o", str(out))
    assert ex.status == ExitStatus.VERIFY_FAILED and ex.json["bad_chunks"] == [1]
    assert not out.exists() and list(tmp_path.glob(".exported.bin*")) == []


def test_errors_map_to_exit_codes(icli: Cli, tmp_path: Path) -> None:
    unknown = "0x" + "ab" * 32
    for cmd in (["cat", unknown], ["verify", unknown], ["pin", unknown], ["unpin", unknown]):
        r = icli("--json", *cmd)
        assert r.status == ExitStatus.NOT_FOUND, cmd
        assert r.json["status"] == "not_found"
    assert icli("--json", "cat", "0x1234").status == ExitStatus.USAGE
    assert icli("--json", "add", str(tmp_path / "nope")).status == ExitStatus.NOT_FOUND
    assert icli("--json", "add", str(tmp_path)).status == ExitStatus.USAGE
    bad_cs = icli("--json", "add", "--chunk-size", "3MiB", str(_file(tmp_path, 10)))
    assert bad_cs.status == ExitStatus.USAGE and "power of two" in bad_cs.json["error"]


def test_locked_store_is_reported(icli: Cli, tmp_path: Path) -> None:
    with Store.open(icli.home / "store"):
        r = icli("--json", "add", str(_file(tmp_path, 10)))
    assert r.status == ExitStatus.UNAVAILABLE and "in use by another process" in r.json["error"]
    assert r.json["retryable"] is True and "b'" not in r.json["error"]
