"""End to end: `bcai get --json` reports wire_bytes and local_bytes (delta, compression).

A real `bcai serve` holds v2 of a content and a compressible CSV; a receiver that holds v1
fetches v2 (only the changed chunks cross the wire) and the CSV (fewer bytes on the wire than
the content, and every byte on the wire when `[network] compress = false`).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from tests._procs import ServeProcess
from tests.e2e.test_transfer_e2e import ENV, bcai, cli, sha256_file

MiB = 1 << 20


def _csv(size: int) -> bytes:
    rng = random.Random(5)
    rows = [b"id,ts,user,city,amount"]
    total, i = 0, 0
    while total < size:
        row = (
            f"{i},{1_700_000_000 + 7 * i},u{rng.randrange(10**6):06d},"
            f"city-{rng.randrange(300)},{rng.random() * 1000:.2f}"
        ).encode()
        rows.append(row)
        total += len(row) + 1
        i += 1
    return b"\n".join(rows)[:size]


def test_get_json_reports_wire_and_local_bytes(tmp_path: Path) -> None:
    rng = random.Random(9)
    v1 = rng.randbytes(16 * MiB)
    v2 = bytearray(v1)
    v2[3 * MiB + 100] ^= 1  # one 1 MiB chunk of 16 changed: 6.25% of the chunks
    v2 += rng.randbytes(MiB // 2)  # and half a chunk appended
    csv = _csv(8 * MiB)
    files = {}
    for name, data in (("v1", v1), ("v2", bytes(v2)), ("csv", csv)):
        files[name] = tmp_path / f"{name}.bin"
        files[name].write_bytes(data)
    origin, recv, plain = tmp_path / "origin", tmp_path / "recv", tmp_path / "plain"
    for d in (origin, recv, plain):
        cli(d, "init")
    root2 = cli(origin, "add", str(files["v2"]))["root"]
    root_csv = cli(origin, "add", str(files["csv"]))["root"]
    cli(recv, "add", str(files["v1"]))
    cfg = plain / "config.toml"
    assert "compress = true" in cfg.read_text()  # init writes every key
    cfg.write_text(cfg.read_text().replace("compress = true", "compress = false"))
    server = ServeProcess(origin, env=ENV)
    try:
        out = tmp_path / "v2.out"
        got = json.loads(bcai(recv, "get", root2, "--peer", server.peer, "-o", str(out)).stdout)
        assert sha256_file(out) == hashlib.sha256(v2).hexdigest()
        assert got["local_chunks"] == 15 and got["local_bytes"] == 15 * MiB
        assert got["fetched_chunks"] == 2  # the changed chunk and the appended tail
        assert got["wire_bytes"] == MiB + MiB // 2  # random data: sent raw

        z = json.loads(bcai(recv, "get", root_csv, "--peer", server.peer).stdout)
        assert z["fetched_bytes"] == len(csv) and z["wire_bytes"] <= 0.8 * len(csv)
        raw = json.loads(bcai(plain, "get", root_csv, "--peer", server.peer).stdout)
        assert raw["wire_bytes"] == raw["fetched_bytes"] == len(csv)
        assert raw["local_bytes"] == 0
    finally:
        assert server.stop() == 0
