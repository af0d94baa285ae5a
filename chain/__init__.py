"""``chain``: the node's face to the EVM contracts (layer 6; the only package importing web3).

Layout:

- ``backend``   ``EmbeddedChain`` (py-evm in process) and ``RpcChain`` (JSON-RPC, e.g. anvil)
- ``anvil``     start/stop a local anvil from node_modules
- ``contracts`` compiled artifacts (package data) and the custom-error table
- ``reverts``   backend-specific failures -> ``ChainRevert`` subclasses / ``ChainUnavailable``
- ``tx``        sign, send, wait; ``TxResult`` with gas used and decoded events
- ``deploy``    ``deploy_suite`` -> ``Deployment`` (stored in the node's config ``[chain]``)
- ``client``    ``ChainClient``: typed wrappers over the suite's contracts
- ``eip712``    domains from the chain id; validators' allocation signatures
- ``merkle``    OpenZeppelin StandardMerkleTree-compatible allocation trees
- ``indexer``   event replay into LevelDB (restart-safe, confirmation depth, reorgs)
- ``port``      ``ChainPort``: the narrow interface the node's services use
- ``config``    the ``[chain]`` table of ``<data_dir>/config.toml``
"""

from .backend import ChainBackend as ChainBackend
from .backend import EmbeddedChain as EmbeddedChain
from .backend import RpcChain as RpcChain
from .client import ChainClient as ChainClient
from .deploy import Deployment as Deployment
from .deploy import DeployParams as DeployParams
from .deploy import deploy_suite as deploy_suite
from .errors import ChainError as ChainError
from .errors import ChainRevert as ChainRevert
from .errors import ChainUnavailable as ChainUnavailable
from .errors import ChainUsageError as ChainUsageError
from .errors import revert_class as revert_class
from .tx import TxResult as TxResult

__all__ = [
    "ChainBackend",
    "ChainClient",
    "ChainError",
    "ChainRevert",
    "ChainUnavailable",
    "ChainUsageError",
    "DeployParams",
    "Deployment",
    "EmbeddedChain",
    "RpcChain",
    "TxResult",
    "deploy_suite",
    "revert_class",
]
