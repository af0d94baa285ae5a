"""Identity: encrypted keystore + sealed Noise key, loaded back only with the passphrase."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import nacl.public
import pytest

from node.identity import (
    IdentityExists,
    IdentityNotFound,
    NoPassphrase,
    WrongPassphrase,
    create_identity,
    fast_kdf_requested,
    load_identity,
    read_address,
    resolve_passphrase,
)


def test_create_then_load(tmp_path: Path) -> None:
    ident = create_identity(tmp_path, "pw", fast_kdf=True)
    loaded = load_identity(tmp_path, "pw")
    assert loaded.address == ident.address == read_address(tmp_path)
    assert loaded.account.key == ident.account.key
    assert loaded.noise_private == ident.noise_private
    assert bytes(nacl.public.PrivateKey(loaded.noise_private).public_key) == loaded.noise_public
    assert "noise_private" not in repr(loaded) and ident.noise_private.hex() not in repr(loaded)
    for name in ("account.json", "noise.json"):
        path = tmp_path / "keystore" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert ident.noise_private.hex() not in path.read_text()
        assert ident.account.key.hex().removeprefix("0x") not in path.read_text()


def test_wrong_passphrase_and_missing_identity(tmp_path: Path) -> None:
    with pytest.raises(IdentityNotFound):
        load_identity(tmp_path, "pw")
    create_identity(tmp_path, "pw", fast_kdf=True)
    with pytest.raises(WrongPassphrase):
        load_identity(tmp_path, "wrong")
    with pytest.raises(IdentityExists):
        create_identity(tmp_path, "pw", fast_kdf=True)


def test_noise_file_bound_to_its_account(tmp_path: Path) -> None:
    create_identity(tmp_path / "a", "pw", fast_kdf=True)
    create_identity(tmp_path / "b", "pw", fast_kdf=True)
    # Swap in another node's Noise key file: refused.
    (tmp_path / "a/keystore/noise.json").write_text(
        (tmp_path / "b/keystore/noise.json").read_text()
    )
    with pytest.raises(Exception, match="another account"):
        load_identity(tmp_path / "a", "pw")


def test_import_private_key(tmp_path: Path) -> None:
    key = bytes(range(1, 33))
    ident = create_identity(tmp_path, "pw", fast_kdf=True, private_key=key)
    assert bytes(load_identity(tmp_path, "pw").account.key) == key == bytes(ident.account.key)


def test_fast_kdf_only_on_request(tmp_path: Path) -> None:
    assert fast_kdf_requested({"BCAI_INSECURE_FAST_KDF": "1"})
    assert not fast_kdf_requested({})
    create_identity(tmp_path, "pw", fast_kdf=True)
    ks = json.loads((tmp_path / "keystore/account.json").read_text())
    assert ks["crypto"]["kdf"] == "scrypt" and ks["crypto"]["kdfparams"]["n"] == 16


def test_passphrase_sources(tmp_path: Path) -> None:
    f = tmp_path / "pass.txt"
    f.write_text("from file\n")
    assert resolve_passphrase({"BCAI_PASSPHRASE": "env"}, f) == "from file"
    assert resolve_passphrase({"BCAI_PASSPHRASE": "env"}) == "env"
    with pytest.raises(NoPassphrase):
        resolve_passphrase({}, stdin=None)
