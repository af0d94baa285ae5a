#!/usr/bin/env python3
# ruff: noqa
# fmt: off
# (vendored: see README.md; kept as upstream wrote it, not linted or formatted here)
"""Plain TCP receiver: tcp_recv.py PORT OUTFILE  (binds 127.0.0.1, one connection, recv_into 1 MiB buffer -> file)."""
import socket, sys
port, out = int(sys.argv[1]), sys.argv[2]
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", port)); ls.listen(1)
print("READY", flush=True)
c, _ = ls.accept(); ls.close()
buf = bytearray(1 << 20); mv = memoryview(buf)
with open(out, "wb", buffering=0) as f:
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        off = 0
        while off < n:
            off += f.write(mv[off:n])
c.close()
