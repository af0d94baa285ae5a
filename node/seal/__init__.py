"""Encryption at rest: sealed content (ChaCha20-Poly1305 records, Argon2id passphrases).

A sealed stream is ordinary content to the rest of the node: its content root is over the
ciphertext, so the store, transfers, receipts, slots and data-availability proofs handle it
unchanged, and a host stores, serves and proves it without the key. Only ``add --encrypt`` and
``get``/``export``/``cat --key`` seal and open. Format and threat model: docs/encryption.md.

Layer 1.5: pure (bytes in, bytes out) apart from reading and writing key files; imports
node.content (the plaintext's root), cryptography (ChaCha20-Poly1305) and PyNaCl (Argon2id).
"""

from ._errors import BadKey as BadKey
from ._errors import MalformedSeal as MalformedSeal
from ._errors import NotSealed as NotSealed
from ._errors import SealError as SealError
from ._errors import SealTampered as SealTampered
from ._errors import WrongKey as WrongKey
from ._format import DEFAULT_MEMLIMIT as DEFAULT_MEMLIMIT
from ._format import DEFAULT_OPSLIMIT as DEFAULT_OPSLIMIT
from ._format import DEFAULT_RECORD_SHIFT as DEFAULT_RECORD_SHIFT
from ._format import HEADER_SIZE as HEADER_SIZE
from ._format import MAX_MEMLIMIT as MAX_MEMLIMIT
from ._format import MAX_OPSLIMIT as MAX_OPSLIMIT
from ._format import MIN_MEMLIMIT as MIN_MEMLIMIT
from ._format import MIN_OPSLIMIT as MIN_OPSLIMIT
from ._format import SEALED_MEDIA_TYPE as SEALED_MEDIA_TYPE
from ._format import TAG_SIZE as TAG_SIZE
from ._format import TRAILER_SIZE as TRAILER_SIZE
from ._format import ContentKey as ContentKey
from ._format import Header as Header
from ._format import parse_header as parse_header
from ._format import read_key_file as read_key_file
from ._format import sealed_size as sealed_size
from ._format import write_key_file as write_key_file
from ._stream import OpenedStream as OpenedStream
from ._stream import Opener as Opener
from ._stream import Sealer as Sealer
from ._stream import SealReader as SealReader
from ._stream import SealResult as SealResult
from ._stream import open_bytes as open_bytes
from ._stream import open_sealed as open_sealed
from ._stream import seal_bytes as seal_bytes
