"""The ``bcai`` command line.

``main(argv, env, stdout, stderr) -> ExitStatus`` is the whole face; tests call it in-process.
Sub-commands live in one module per area and register themselves through ``register(sub)``:

- ``_store_cmds``  init, add, ls, cat, export, verify, pin, unpin, gc
- ``_net_cmds``    serve, get, status
- ``_chain_cmds``  chain up/deploy/status, publish, receipts, host, prove, rewards
- ``_demo``        demo (the README's main job)
"""

from ._main import Context as Context
from ._main import ExitStatus as ExitStatus
from ._main import main as main

__all__ = ["Context", "ExitStatus", "main"]
