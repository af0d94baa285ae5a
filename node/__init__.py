"""bcai-transfer node.

Layers, each importing only the ones below it (see docs/architecture.md):

1. ``node.content``   segments, RFC 6962 Merkle tree, chunk roots, manifests (pure, no I/O)
2. ``node.store``     chunk files + LevelDB index, cache quota, pins, GC
3. ``node.noise``, ``node.wire``  sans-IO Noise handshake/cipher and message codec;
   ``node.transport``  trio adapters that drive them over TCP
4. ``node.transfer``  sessions, multi-source scheduler, flow control, resume, bandwidth
5. ``node.ledger``    reputation ledger and reward allocation
6. ``chain``          (top-level package) contracts client; nothing above imports web3
7. ``node.cli``, ``node.api``  the faces
"""


# node.log (structlog, which defaults library callers' logs to stderr) is imported by every
# module that logs, so it is not imported here: `bcai get` through a running node, which logs
# nothing, does not pay its ~0.15 s.
