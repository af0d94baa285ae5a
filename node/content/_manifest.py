"""The manifest: what a content root is, in a form peers exchange and people read.

Encoded as canonical JSON (UTF-8, keys sorted, no insignificant whitespace) so that every
implementation produces the same bytes. The root commits only to the data; the manifest's
``size`` and ``chunk_size`` are checked by the chunk-root list (which must hash to the root) and
by every chunk's length, so a lying manifest is caught before any byte is accepted.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ._errors import ContentError, InvalidManifest
from ._tree import (
    DEFAULT_CHUNK_SIZE,
    EMPTY_ROOT,
    HASH_SIZE,
    SEGMENT_SIZE,
    check_chunk_size,
    chunk_count,
    segment_count,
)

MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_MEDIA_TYPE_BYTES = 127
MAX_CONTENT_SIZE = 1 << 50  # 1 PiB: far above any use, far below overflow anywhere


def root_hex(root: bytes) -> str:
    """The content ID as people see it: 0x-prefixed lowercase hex of the 32-byte root."""
    return "0x" + root.hex()


def parse_root(text: str) -> bytes:
    """Parse a content ID (0x-prefixed or bare 64 hex digits) into 32 bytes."""
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if len(t) != 2 * HASH_SIZE:
        raise InvalidManifest(f"content root must be 32 bytes of hex, got {text!r}")
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise InvalidManifest(f"content root is not hex: {text!r}") from None


@dataclass(frozen=True)
class Manifest:
    """Describes one piece of content: its root and how it is cut."""

    root: bytes
    size: int
    chunk_size: int = DEFAULT_CHUNK_SIZE
    segment_size: int = SEGMENT_SIZE
    name: str = ""
    media_type: str = "application/octet-stream"
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise InvalidManifest("root must be 32 bytes")
        if not isinstance(self.size, int) or not 0 <= self.size <= MAX_CONTENT_SIZE:
            raise InvalidManifest(f"size {self.size!r} out of range")
        if self.segment_size != SEGMENT_SIZE:
            raise InvalidManifest(f"segment size must be {SEGMENT_SIZE}, got {self.segment_size}")
        try:
            check_chunk_size(self.chunk_size)
        except ContentError as exc:
            raise InvalidManifest(str(exc)) from None
        if len(self.name.encode()) > MAX_NAME_BYTES or any(c in self.name for c in "/\\\x00"):
            raise InvalidManifest("name must be a plain file name of at most 255 bytes")
        if len(self.media_type.encode()) > MAX_MEDIA_TYPE_BYTES:
            raise InvalidManifest("media type too long")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise InvalidManifest("empty content must have the root SHA256('')")
        if not isinstance(self.created, int) or self.created < 0:
            raise InvalidManifest("created must be a non-negative unix time")

    @property
    def chunk_count(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    @property
    def segment_count(self) -> int:
        return segment_count(self.size)

    def chunk_length(self, index: int) -> int:
        """Byte length of chunk ``index`` (all full but the last)."""
        n = self.chunk_count
        if not 0 <= index < n:
            raise IndexError(f"chunk {index} outside 0..{n - 1}")
        return self.chunk_size if index < n - 1 else self.size - (n - 1) * self.chunk_size

    @property
    def root_hex(self) -> str:
        return root_hex(self.root)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["root"] = self.root_hex
        d["version"] = MANIFEST_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        if not isinstance(d, dict):
            raise InvalidManifest("manifest must be a JSON object")
        if d.get("version", MANIFEST_VERSION) != MANIFEST_VERSION:
            raise InvalidManifest(f"unsupported manifest version {d.get('version')!r}")
        try:
            return cls(
                root=parse_root(str(d["root"])),
                size=_int(d, "size"),
                chunk_size=_int(d, "chunk_size"),
                segment_size=_int(d, "segment_size"),
                name=_str(d, "name"),
                media_type=_str(d, "media_type"),
                created=_int(d, "created"),
            )
        except KeyError as exc:
            raise InvalidManifest(f"manifest lacks {exc.args[0]!r}") from None

    def to_bytes(self) -> bytes:
        """Canonical JSON: UTF-8, sorted keys, separators without spaces."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Manifest:
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidManifest(f"manifest of {len(data)} bytes exceeds {MAX_MANIFEST_BYTES}")
        try:
            obj = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidManifest(f"manifest is not UTF-8 JSON: {exc}") from None
        except RecursionError:  # deeply nested brackets fit under the size cap (fuzzing F2)
            raise InvalidManifest("manifest JSON is nested too deeply") from None
        try:
            return cls.from_dict(obj)
        except UnicodeEncodeError:  # lone surrogates from \ud800-style escapes (fuzzing F1)
            raise InvalidManifest("manifest text is not valid Unicode") from None


def _int(d: dict[str, Any], key: str) -> int:
    v = d[key]
    if type(v) is not int:
        raise InvalidManifest(f"{key} must be an integer")
    return v


def _str(d: dict[str, Any], key: str) -> str:
    v = d[key]
    if not isinstance(v, str):
        raise InvalidManifest(f"{key} must be a string")
    return v
