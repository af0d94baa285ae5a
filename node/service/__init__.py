"""The node as a service (layer 7): chain duties that run inside ``bcai serve``.

- ``_availability``  answer a data-availability challenge from the store (segment + audit path)
- ``_answers``       durable queue of challenge answers (LevelDB)
- ``_duties``        ``ChainDuties``: batch receipt submission and challenge answering on a
                     schedule, through the narrow ``chain.port.ChainPort`` interface
- ``_serve``         duties from the node's ``[chain]`` config; the status file of a running node
- ``demo``           the README's main job (``bcai demo``)
"""

from ._answers import AnswerQueue as AnswerQueue
from ._answers import AnswerRecord as AnswerRecord
from ._availability import prove_segment as prove_segment
from ._duties import ChainDuties as ChainDuties
from ._duties import ReceiptOutbox as ReceiptOutbox
from ._serve import StatusFile as StatusFile
from ._serve import open_chain_duties as open_chain_duties
