"""The node as a service (layer 7): chain duties that run inside ``bcai serve``.

- ``_availability``  answer a (legacy, whole-content) availability challenge from the store
- ``_answers``       durable queue of challenge answers (LevelDB)
- ``_duties``        ``ChainDuties``: crash-safe receipt submission, challenge answers from the
                     slot store, owed-payment withdrawals, through ``chain.port.ChainPort``
- ``_validator``     ``ValidatorDuty``: scheduled challenges and slashes (``serve --validator``)
- ``_allocation``    ``EpochAllocator``: index, reputation ledger, allocate, sign, post per epoch
- ``_serve``         duties from the node's ``[chain]`` config; the status file of a running node
- ``demo``           the README's main job (``bcai demo``)
"""

from ._allocation import EpochAllocator as EpochAllocator
from ._allocation import PostedAllocation as PostedAllocation
from ._allocation import compute_allocation as compute_allocation
from ._allocation import sign_and_post as sign_and_post
from ._answers import AnswerQueue as AnswerQueue
from ._answers import AnswerRecord as AnswerRecord
from ._availability import prove_segment as prove_segment
from ._duties import ChainDuties as ChainDuties
from ._duties import DeferPolicy as DeferPolicy
from ._duties import ReceiptOutbox as ReceiptOutbox
from ._duties import SlotProver as SlotProver
from ._serve import StatusFile as StatusFile
from ._serve import open_chain_duties as open_chain_duties
from ._serve import validator_enabled as validator_enabled
from ._validator import ChallengeBook as ChallengeBook
from ._validator import IssuedChallenge as IssuedChallenge
from ._validator import ValidatorDuty as ValidatorDuty
