"""Durable queue of challenge answers (LevelDB).

A challenge seen on chain is turned into an answer (the ``S`` sampled segments of the slot and
their audit paths) as soon as its indices are drawn, and written here before any transaction is
attempted, so a chain that is down, or a node restart, delays the answer and never loses it.
Records move ``queued -> sent`` (or ``failed`` with the reason when the answer cannot be built
or the chain refused it for good).

Keys under the prefix given: ``a/<challenge id: 8 bytes BE>`` -> JSON record.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import plyvel

_U64 = struct.Struct(">Q")


@dataclass
class AnswerRecord:
    challenge_id: int
    root: str  #: 0x hex
    slot: int = 0
    indices: list[int] = field(default_factory=list)
    deadline: int = 0
    state: str = "queued"  #: queued | sent | failed
    segments: list[str] = field(default_factory=list)  #: hex (empty when it could not be built)
    proofs: list[list[str]] = field(default_factory=list)
    tx_hash: str = ""
    gas_used: int = 0
    error: str = ""
    attempts: int = 0

    @classmethod
    def from_json(cls, raw: bytes) -> AnswerRecord:
        """Tolerates records written by older versions (unknown fields are dropped)."""
        known = {f.name for f in dataclasses.fields(cls)}
        obj = {k: v for k, v in json.loads(raw).items() if k in known}
        return cls(**obj)


class AnswerQueue:
    def __init__(self, db: plyvel.DB) -> None:
        self._db = db.prefixed_db(b"a/")

    def get(self, challenge_id: int) -> AnswerRecord | None:
        raw = self._db.get(_U64.pack(challenge_id))
        return None if raw is None else AnswerRecord.from_json(raw)

    def put(self, rec: AnswerRecord) -> None:
        self._db.put(_U64.pack(rec.challenge_id), json.dumps(asdict(rec)).encode(), sync=True)

    def all(self) -> Iterator[AnswerRecord]:
        for _, raw in self._db.iterator():
            yield AnswerRecord.from_json(raw)

    def queued(self) -> list[AnswerRecord]:
        return [r for r in self.all() if r.state == "queued"]

    def counts(self) -> dict[str, int]:
        out = {"queued": 0, "sent": 0, "failed": 0}
        for r in self.all():
            out[r.state] = out.get(r.state, 0) + 1
        return out
