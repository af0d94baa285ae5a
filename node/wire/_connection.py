"""One connection's protocol engine: decoder + encoder + state, no I/O (h11's ``Connection``).

The transport feeds it decrypted plaintext and asks it for bytes to encrypt::

    conn = WireConnection(Capabilities(...), agent="bcai/0.1")
    out = conn.send(conn.hello())            # plaintext to encrypt and frame
    conn.receive_data(plaintext)
    while (ev := conn.next_event()) is not NEED_DATA: ...
"""

from __future__ import annotations

from ._caps import Capabilities
from ._codec import encode, encode_parts
from ._decoder import MessageDecoder
from ._limits import PROTOCOL_VERSION
from ._messages import Buffer, Hello, Message
from ._sentinels import Sentinel
from ._state import Phase, ProtocolState, Side


class WireConnection:
    """Sans-IO wire protocol for one peer connection (after the Noise handshake)."""

    def __init__(self, capabilities: Capabilities | None = None, agent: str = "") -> None:
        self.capabilities = capabilities if capabilities is not None else Capabilities()
        self.agent = agent
        self.state = ProtocolState()
        self._decoder = MessageDecoder(self.capabilities.max_message_size)

    # -- receiving
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._decoder.receive_data(data)

    def receive_eof(self) -> None:
        self._decoder.receive_eof()

    def next_event(self) -> Message | Sentinel:
        """Next message from the peer (state-checked), ``NEED_DATA`` or ``PEER_CLOSED``."""
        ev = self._decoder.next_event()
        if not isinstance(ev, Sentinel):
            self.state.process(Side.THEM, ev)
        return ev

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    # -- sending
    def hello(self) -> Hello:
        """This side's Hello."""
        return Hello(PROTOCOL_VERSION, self.capabilities, self.agent)

    def send(self, msg: Message) -> bytes:
        """Check ``msg`` against the state, apply it, and return its bytes."""
        data = encode(msg)
        self.state.process(Side.US, msg)
        return data

    def send_parts(self, msg: Message) -> list[Buffer]:
        """As ``send``, but ChunkData's payload comes back uncopied as a separate buffer."""
        parts = encode_parts(msg)
        self.state.process(Side.US, msg)
        return parts

    # -- introspection
    @property
    def peer_capabilities(self) -> Capabilities | None:
        return self.state.capabilities[Side.THEM]

    @property
    def closed(self) -> bool:
        """Both sides said Goodbye."""
        return all(p is Phase.CLOSED for p in self.state.phase.values())
