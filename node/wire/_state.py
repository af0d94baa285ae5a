"""Per-connection protocol state, stated as data (after h11's ``_state.py``).

Both directions are judged by the same rules; ``US`` is what this node sends, ``THEM`` what it
receives. Rules:

1. A side's first message is Hello. Before it only Error and Goodbye are allowed, so a side can
   refuse (e.g. UNSUPPORTED_VERSION) without greeting.                   -> PROTOCOL_VIOLATION
2. Hello is sent exactly once.                                           -> PROTOCOL_VIOLATION
3. After Goodbye a side sends nothing.                                   -> PROTOCOL_VIOLATION
4. Requests (Want, GetChunkRoots, Request) need both Hellos: the requester must know the
   answering side's limits, and the answering side must have greeted.   -> PROTOCOL_VIOLATION
5. Chunk requests are counted per requester. An index is outstanding from the Request that
   names it until the last ChunkData piece of it, a Cancel naming it, a NotFound for its root,
   or an Error carrying its request_id. A requester may have at most the answering side's
   ``max_outstanding`` indices outstanding (-> RATE_LIMITED, recoverable: answer Error with the
   request_id and carry on), may not reuse an open request_id or ask again for an outstanding
   index (-> PROTOCOL_VIOLATION).
ChunkData for an index that is not outstanding is passed through: pieces in flight when a
Cancel crossed them are legal, and the engine drops what it did not ask for.
Local violations raise ``LocalProtocolError``; remote ones ``RemoteProtocolError`` with ``code``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from ._caps import Capabilities
from ._codes import ErrorCode
from ._errors import LocalProtocolError, RemoteProtocolError
from ._limits import Kind
from ._messages import Cancel, ChunkData, ErrorMsg, Hello, Message, NotFound, Request


class Side(enum.Enum):
    US = "us"
    THEM = "them"

    @property
    def other(self) -> Side:
        return Side.THEM if self is Side.US else Side.US


class Phase(enum.Enum):
    AWAIT_HELLO = "await_hello"
    OPEN = "open"
    CLOSED = "closed"


_ALL: Final = frozenset(Kind)
ALLOWED: Final[dict[Phase, frozenset[Kind]]] = {
    Phase.AWAIT_HELLO: frozenset({Kind.HELLO, Kind.ERROR, Kind.GOODBYE}),
    Phase.OPEN: _ALL - {Kind.HELLO},
    Phase.CLOSED: frozenset(),
}
TRANSITIONS: Final[dict[tuple[Phase, Kind], Phase]] = {
    (Phase.AWAIT_HELLO, Kind.HELLO): Phase.OPEN,
    (Phase.AWAIT_HELLO, Kind.GOODBYE): Phase.CLOSED,
    (Phase.OPEN, Kind.GOODBYE): Phase.CLOSED,
}
NEEDS_BOTH_HELLOS: Final = frozenset({Kind.WANT, Kind.GET_CHUNK_ROOTS, Kind.REQUEST})

ChunkKey = tuple[bytes, int]


@dataclass
class Outstanding:
    """Chunk indices one side has requested and not yet had answered."""

    by_key: dict[ChunkKey, int] = field(default_factory=dict)
    by_request: dict[int, set[ChunkKey]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_key)

    def add(self, req: Request) -> None:
        keys = {(bytes(req.root), i) for i in req.indices}
        self.by_request[req.request_id] = keys
        for k in keys:
            self.by_key[k] = req.request_id

    def done(self, key: ChunkKey) -> None:
        req = self.by_key.pop(key, None)
        if req is not None:
            keys = self.by_request[req]
            keys.discard(key)
            if not keys:
                del self.by_request[req]

    def drop_request(self, request_id: int) -> None:
        for k in self.by_request.pop(request_id, set()):
            del self.by_key[k]

    def drop_root(self, root: bytes) -> None:
        for k in [k for k in self.by_key if k[0] == root]:
            self.done(k)


class ProtocolState:
    """Tracks both sides of one connection and enforces the rules above."""

    def __init__(self) -> None:
        self.phase: dict[Side, Phase] = {Side.US: Phase.AWAIT_HELLO, Side.THEM: Phase.AWAIT_HELLO}
        # set from each side's Hello; None until that side has greeted (rule 4 tests this)
        self.capabilities: dict[Side, Capabilities | None] = {Side.US: None, Side.THEM: None}
        self.requested: dict[Side, Outstanding] = {Side.US: Outstanding(), Side.THEM: Outstanding()}

    def _violation(self, side: Side, why: str, code: ErrorCode, **kw: int) -> Exception:
        if side is Side.US:
            return LocalProtocolError(why)
        return RemoteProtocolError(
            why, code=code, recoverable=code is not ErrorCode.PROTOCOL_VIOLATION, **kw
        )

    def process(self, side: Side, msg: Message) -> None:
        """Check ``msg`` sent by ``side`` and apply it; raises without changing state."""
        kind = msg.KIND
        phase = self.phase[side]
        pv = ErrorCode.PROTOCOL_VIOLATION
        if kind not in ALLOWED[phase]:
            raise self._violation(side, f"{kind.name} not allowed in {phase.name}", pv, kind=kind)
        if kind in NEEDS_BOTH_HELLOS and self.capabilities[side.other] is None:
            raise self._violation(side, f"{kind.name} before the other Hello", pv, kind=kind)
        if isinstance(msg, Request):
            self._check_request(side, msg)
        # -- everything checked; apply
        self.phase[side] = TRANSITIONS.get((phase, kind), phase)
        if isinstance(msg, Hello):
            self.capabilities[side] = msg.capabilities
        elif isinstance(msg, Request):
            self.requested[side].add(msg)
        elif isinstance(msg, Cancel):
            for i in msg.indices:
                self.requested[side].done((bytes(msg.root), i))
        elif isinstance(msg, ChunkData):
            if msg.is_last:
                self.requested[side.other].done((bytes(msg.root), msg.index))
        elif isinstance(msg, NotFound):
            self.requested[side.other].drop_root(bytes(msg.root))
        elif isinstance(msg, ErrorMsg) and msg.request_id:
            self.requested[side.other].drop_request(msg.request_id)

    def _check_request(self, side: Side, req: Request) -> None:
        mine = self.requested[side]
        kw = {"kind": int(req.KIND), "request_id": req.request_id}
        if req.request_id in mine.by_request:
            raise self._violation(
                side, f"request_id {req.request_id} is open", ErrorCode.PROTOCOL_VIOLATION, **kw
            )
        if any((bytes(req.root), i) in mine.by_key for i in req.indices):
            raise self._violation(
                side, "chunk index already outstanding", ErrorCode.PROTOCOL_VIOLATION, **kw
            )
        answering = self.capabilities[side.other]
        assert answering is not None  # rule 4 was checked first
        if len(mine) + len(req.indices) > answering.max_outstanding:
            raise self._violation(
                side,
                f"{len(mine)} + {len(req.indices)} outstanding > {answering.max_outstanding}",
                ErrorCode.RATE_LIMITED,
                **kw,
            )

    def outstanding(self, side: Side) -> int:
        """Indices ``side`` has requested and not yet had answered."""
        return len(self.requested[side])
