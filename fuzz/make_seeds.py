"""Write seed corpora from the project's own encoders (run with the MAIN venv's python).

    .venv/bin/python fuzz/make_seeds.py

Seeds go to ``fuzz/corpus/<target>/`` (git-ignored; regenerate them, they are deterministic
up to Hypothesis' draws). Each target starts from valid encodings so the fuzzer spends its
time past the first length check.
"""

from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from eth_account import Account  # noqa: E402
from hypothesis.errors import NonInteractiveExampleWarning  # noqa: E402

from node import wire  # noqa: E402
from node.content import EMPTY_ROOT, Manifest  # noqa: E402
from tests.wire.strategies import messages  # noqa: E402

CORPUS = REPO / "fuzz" / "corpus"
STATIC = bytes(range(32))  # must match fuzz_identity.STATIC
rng = random.Random(9)


def put(target: str, seeds: list[bytes]) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds):
        (d / f"seed-{i:04d}").write_bytes(s)
    print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds))} bytes")


def main() -> None:
    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    msgs = [wire.encode(messages.example()) for _ in range(150)]
    # messages: first byte is the feed split (0 = one feed); streams of 1..4 messages
    m_seeds = []
    for _ in range(150):
        stream = b"".join(rng.sample(msgs, rng.randint(1, 4)))
        m_seeds.append(bytes([rng.choice([0, 0, 1, 7, 64, 255])]) + stream)
    m_seeds += [b"\x00" + m for m in msgs[:50]]
    put("messages", m_seeds)
    # frames: Noise messages are opaque here; frame valid message encodings and random blobs
    f_seeds = []
    for _ in range(100):
        frames = [
            rng.choice(msgs)[:65535].ljust(16, b"\0")
            if rng.random() < 0.5
            else rng.randbytes(rng.randint(16, 300))
            for _ in range(rng.randint(1, 4))
        ]
        f_seeds.append(
            bytes([rng.choice([0, 1, 2, 3, 17, 200])]) + b"".join(map(wire.encode_frame, frames))
        )
    put("frames", f_seeds)
    # identity payloads signed over STATIC, with and without extensions / capability variations
    i_seeds = []
    for k in range(8):
        acct = Account.from_key(bytes([k + 1]) * 32)
        caps = wire.Capabilities(max_message_size=wire.MAX_MESSAGE_LEN + k * 1000)
        p = wire.make_identity_payload(acct, STATIC, caps)
        i_seeds += [p, p + rng.randbytes(k * 100)]
    put("identity", i_seeds)
    # manifests from the encoder
    ms = [Manifest(EMPTY_ROOT, 0, created=0)]
    for _ in range(30):
        ms.append(
            Manifest(
                rng.randbytes(32),
                rng.randint(1, 1 << 40),
                1 << rng.randint(18, 22),
                name=rng.choice(["", "a.bin", "résumé.pdf", "x" * 255, "日本.txt"]),
                media_type=rng.choice(["application/octet-stream", "text/plain"]),
                created=rng.randint(0, 1 << 40),
            )
        )
    put("manifest", [m.to_bytes() for m in ms])


if __name__ == "__main__":
    main()
