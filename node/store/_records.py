"""Records the store keeps in its index and the reports it returns."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from node.content import Manifest, root_hex

from ._errors import StoreCorrupt


class State(enum.StrEnum):
    """Lifecycle of one content root in the store."""

    PARTIAL = "partial"  #: manifest and verified chunk-root list known; some chunks missing
    COMPLETE = "complete"  #: every chunk present (and verified when it was written)


@dataclass(frozen=True)
class ContentRecord:
    """The persisted index record of one content root (``c/<root>``)."""

    list_id: int  #: internal id of its chunk-root list (``r/<id>/<index>``)
    state: State
    manifest: Manifest
    pinned: bool = False
    present: int = 0  #: chunks present; equals ``manifest.chunk_count`` when complete
    added: float = 0.0  #: unix time the record was created

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.list_id,
            "state": self.state.value,
            "manifest": self.manifest.to_dict(),
            "pinned": self.pinned,
            "present": self.present,
            "added": self.added,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ContentRecord:
        try:
            return cls(
                list_id=int(obj["id"]),
                state=State(obj["state"]),
                manifest=Manifest.from_dict(obj["manifest"]),
                pinned=bool(obj["pinned"]),
                present=int(obj["present"]),
                added=float(obj["added"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreCorrupt(f"bad content record: {exc}") from None

    def replace(self, **changes: Any) -> ContentRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ContentInfo:
    """What :meth:`Store.list_content` and :meth:`Store.info` tell about one content root."""

    manifest: Manifest
    state: State
    pinned: bool
    present_chunks: int  #: chunks on disk
    last_access: float  #: unix time of the last add, read or write (the LRU key)

    @property
    def root(self) -> bytes:
        return self.manifest.root

    @property
    def complete(self) -> bool:
        return self.state is State.COMPLETE

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": root_hex(self.manifest.root),
            "size": self.manifest.size,
            "name": self.manifest.name,
            "media_type": self.manifest.media_type,
            "chunk_size": self.manifest.chunk_size,
            "chunks": self.manifest.chunk_count,
            "present_chunks": self.present_chunks,
            "state": self.state.value,
            "pinned": self.pinned,
            "last_access": self.last_access,
        }


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`Store.verify`: which chunks failed, and whether the list is sound."""

    root: bytes
    chunks: int  #: chunks in the content
    checked: int  #: chunks read and hashed (the present ones)
    bad: list[int] = field(default_factory=list)  #: indices whose file is damaged or gone
    missing: int = 0  #: chunks not present yet (partial content; not an error)
    roots_ok: bool = True  #: the stored chunk-root list hashes to the content root
    #: indices quarantined here (found damaged by a provider's re-verification; never served)
    quarantined: list[int] = field(default_factory=list)
    #: chunk root of every bad or quarantined index (what the chunk should hash to)
    damaged_roots: dict[int, bytes] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.roots_ok and not self.bad and not self.quarantined

    @property
    def damaged(self) -> list[int]:
        """Bad or quarantined indices, ascending: what a repair re-fetches."""
        return sorted(set(self.bad) | set(self.quarantined))

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": root_hex(self.root),
            "ok": self.ok,
            "chunks": self.chunks,
            "checked": self.checked,
            "bad_chunks": self.bad,
            "quarantined_chunks": self.quarantined,
            "damaged": [
                {
                    "index": i,
                    "chunk_root": "0x" + cr.hex(),
                    "reason": "quarantined" if i in self.quarantined else "corrupt",
                }
                for i, cr in sorted(self.damaged_roots.items())
            ],
            "missing_chunks": self.missing,
            "chunk_roots_ok": self.roots_ok,
        }


@dataclass(frozen=True)
class GcReport:
    """Result of :meth:`Store.gc`."""

    files_removed: int
    bytes_freed: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EvictReport:
    """Result of :meth:`Store.evict_to_quota` and :meth:`Store.remove`."""

    evicted: list[bytes]  #: content roots removed, least recently used first
    bytes_freed: int  #: chunk bytes no longer referenced (their files are deleted)
    used: int  #: referenced bytes after eviction
    quota: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "evicted": [root_hex(r) for r in self.evicted],
            "bytes_freed": self.bytes_freed,
            "used": self.used,
            "quota": self.quota,
        }


@dataclass(frozen=True)
class StoreStats:
    """Result of :meth:`Store.stats`."""

    path: str
    contents: int
    complete: int
    partial: int
    pinned: int
    used_bytes: int  #: distinct chunk bytes referenced by some content (deduplicated)
    pinned_bytes: int  #: logical size of pinned content
    logical_bytes: int  #: sum of content sizes (before deduplication)
    quota: int | None
    #: files the store keeps chunks in (``get``/``add --link``): change or remove one and
    #: its chunks are damaged (docs/store.md)
    linked_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
