"""The library face of encrypted content: ``Node.add(encrypt=)``, ``export``/``iter_content(key=)``
on a real store, and the exit codes ``classify`` gives the seal errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from node.app import ExitStatus, classify, open_node
from node.content import root_hex, tree_hash
from node.seal import (
    SEALED_MEDIA_TYPE,
    BadKey,
    ContentKey,
    MalformedSeal,
    NotSealed,
    SealTampered,
    WrongKey,
    open_bytes,
    parse_header,
)
from tests._procs import cli


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "node"
    status, _, err = cli(d, "init")
    assert status == 0, err
    return d


def test_node_adds_ciphertext_only_and_opens_it_with_the_key(
    data_dir: Path, tmp_path: Path
) -> None:
    plain = os.urandom(2 * (1 << 20) + 333)
    key = ContentKey.generate()
    with open_node(data_dir) as node:
        added = node.add(io.BytesIO(plain), encrypt=key, name=None)
        root = bytes.fromhex(added["root"][2:])
        assert added["plaintext_root"] == root_hex(tree_hash(plain))
        assert added["media_type"] == SEALED_MEDIA_TYPE and added["name"] == ""
        sealed = b"".join(node.iter_content(root))
        assert tree_hash(sealed) == root and parse_header(sealed).kdf == 0
        assert plain[:4096] not in sealed
        assert open_bytes(sealed, key) == plain
        assert b"".join(node.iter_content(root, key=key)) == plain
        out = node.export(root, tmp_path / "out.bin", key=key)
        assert (tmp_path / "out.bin").read_bytes() == plain
        assert out["size"] == len(plain) and out["plaintext_root"] == added["plaintext_root"]
        with pytest.raises(WrongKey):
            node.export(root, tmp_path / "wrong.bin", key=ContentKey.generate())
        assert not (tmp_path / "wrong.bin").exists()
        # a path source works the same, and the same key seals to a different root
        (tmp_path / "p.bin").write_bytes(plain)
        again = node.add(tmp_path / "p.bin", encrypt=key)
        assert again["root"] != added["root"] and again["name"] == ""
        plain_root = node.add(tmp_path / "p.bin")["root"]
        with pytest.raises(NotSealed):
            b"".join(node.iter_content(bytes.fromhex(plain_root[2:]), key=key))


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (WrongKey("wrong key"), ExitStatus.USAGE),
        (NotSealed("not encrypted"), ExitStatus.USAGE),
        (BadKey("bad key"), ExitStatus.USAGE),
        (MalformedSeal("bad header"), ExitStatus.VERIFY_FAILED),
        (SealTampered("record 3 fails"), ExitStatus.VERIFY_FAILED),
    ],
)
def test_seal_errors_map_to_exit_codes(exc: Exception, status: ExitStatus) -> None:
    failure = classify(exc)
    assert failure is not None and failure.status == status and failure.message == str(exc)
