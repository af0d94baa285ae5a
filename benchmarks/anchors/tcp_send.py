#!/usr/bin/env python3
# ruff: noqa
# fmt: off
# (vendored: see README.md; kept as upstream wrote it, not linted or formatted here)
"""Plain TCP sender: tcp_send.py PORT FILE  (socket.sendfile -> zero-copy sendfile(2) on Linux)."""
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
with open(path, "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.close()
