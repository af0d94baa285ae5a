from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.content import EMPTY_ROOT, InvalidManifest, Manifest, parse_root, root_hex


@given(
    size=st.integers(min_value=1, max_value=1 << 45),
    chunk_exp=st.integers(min_value=18, max_value=22),
    name=st.text(max_size=40).filter(lambda s: not any(c in s for c in "/\\\x00")),
    created=st.integers(min_value=0, max_value=2**40),
)
def test_roundtrip_is_canonical(size: int, chunk_exp: int, name: str, created: int) -> None:
    m = Manifest(b"\x11" * 32, size, 1 << chunk_exp, name=name, created=created)
    b = m.to_bytes()
    assert Manifest.from_bytes(b) == m
    assert Manifest.from_bytes(b).to_bytes() == b


def test_chunk_geometry() -> None:
    m = Manifest(b"\x01" * 32, 3 * 262144 + 5, 262144, created=0)
    assert m.chunk_count == 4
    assert [m.chunk_length(i) for i in range(4)] == [262144, 262144, 262144, 5]
    assert m.segment_count == 3 * 64 + 1
    with pytest.raises(IndexError):
        m.chunk_length(4)
    assert Manifest(EMPTY_ROOT, 0).chunk_count == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"root": b"\x00" * 31},
        {"size": -1},
        {"chunk_size": 3 * 262144},
        {"chunk_size": 128 * 1024},
        {"segment_size": 8192},
        {"name": "a/b"},
        {"name": "x" * 256},
        {"size": 0},  # empty content must carry the empty root
    ],
)
def test_rejects_bad_fields(kwargs: dict) -> None:
    base = {"root": b"\x01" * 32, "size": 10, "created": 0}
    with pytest.raises(InvalidManifest):
        Manifest(**{**base, **kwargs})


@pytest.mark.parametrize(
    "raw",
    [b"", b"\xff", b"[]", b'{"root":"0x00"}', b"{" + b" " * 5000 + b"}", b'{"version":2}'],
)
def test_rejects_bad_bytes(raw: bytes) -> None:
    with pytest.raises(InvalidManifest):
        Manifest.from_bytes(raw)


def test_root_text() -> None:
    r = bytes(range(32))
    assert parse_root(root_hex(r)) == r
    assert parse_root(r.hex()) == r
    for bad in ["0x12", "zz" * 32, ""]:
        with pytest.raises(InvalidManifest):
            parse_root(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 1500,  # docs/fuzzing.md F2: RecursionError escaped
        (
            b'{"chunk_size":262144,"created":0,"media_type":"","name":"\\ud800","root":'
            b'"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",'
            b'"segment_size":4096,"size":0}'
        ),  # docs/fuzzing.md F1: UnicodeEncodeError escaped
    ],
)
def test_fuzz_findings_are_typed_errors(data: bytes) -> None:
    from node.content import InvalidManifest, Manifest

    with pytest.raises(InvalidManifest):
        Manifest.from_bytes(data)
