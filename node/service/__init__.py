"""The node as a service (layer 7): chain duties that run inside ``bcai serve``.

- ``_availability``  answer a data-availability challenge from the store (segment + audit path)
- ``_answers``       durable queue of challenge answers (LevelDB)
- ``_duties``        ``ChainDuties``: batch receipt submission and challenge answering on a
                     schedule, through the narrow ``chain.port.ChainPort`` interface
"""

from ._answers import AnswerQueue as AnswerQueue
from ._answers import AnswerRecord as AnswerRecord
from ._availability import prove_segment as prove_segment
from ._duties import ChainDuties as ChainDuties
from ._duties import ReceiptOutbox as ReceiptOutbox
