"""Slot storage for hosts: one erasure-coded slot per (root, slot), proofs from disk.

Layout under the slot directory (the node uses ``<data dir>/slots``)::

    LOCK                          flock'ed while a process has the directory open
    tmp/<random>.slot|.tree       builds in flight (removed at open)
    <root hex>/<slot>.slot        the slot: ``rows`` segments of 4096 bytes, row order
    <root hex>/<slot>.tree        RFC 6962 tree levels 5 and up (see below)
    <root hex>/<slot>.json        metadata (layout, slot root, checksum); commits the slot

**Why a sidecar tree.** A proof needs, per sample, the audit path to the slot root. Hashing the
slot again per challenge would read gigabytes; keeping every level would cost 64 bytes per
4 KiB segment. The ``.tree`` file keeps the levels from 5 up (one node per aligned group of 32
leaves, then pairs of those, an odd last node carried up as RFC 6962's left-complete tree
does): 2 bytes per segment on disk. A sample costs one 128 KiB read of its group plus one
32-byte read per upper level, so a 2^20-row (4 GiB) slot proves 20 samples in milliseconds.

**Nothing wrong leaves this module.** Every proof is checked against the slot root in the
metadata before it is returned; a missing file raises :class:`SlotMissing`, bad bytes anywhere
(slot, tree, metadata, a file of the wrong length) raise :class:`CorruptSlot`. A host that
deleted data cannot answer, and a damaged disk never makes it answer wrongly (which the
contract would slash as deletion).

**Crash safety.** ``build`` writes both files under ``tmp/``, makes them durable, renames them
into place and only then writes the metadata with :func:`node._fs.atomic_write`. A crash
leaves temp files or data without metadata, which :meth:`SlotStore.open` removes. Rebuilding
an existing slot first deletes its metadata, so a reader never pairs new data with old
metadata. No rename ever lands on a path that is not a regular file this store wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from node._fs import atomic_write, fsync_dir, write_all
from node.content import (
    SEGMENT_SIZE,
    InvalidProof,
    ReadFn,
    SlotLayout,
    StreamingTreeHasher,
    inclusion_proof,
    iter_slot_batches,
    leaf_hash,
    merkle_root,
    node_hash,
    root_hex,
    segment_leaf_hashes,
    verify_inclusion,
)
from node.log import get_logger

from ._errors import NotFound, StoreError, StoreFull, StoreLocked, is_no_space

log = get_logger(__name__)

#: Levels below this are recomputed from the slot data at proof time (groups of 32 leaves).
TREE_SKIP = 5
GROUP = 1 << TREE_SKIP
_META_VERSION = 1
_NODE = 32
_LEVEL_PIECE = 1 << 16  # nodes read at a time while building the upper levels (2 MiB)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class SlotError(StoreError):
    """Root of the slot-store errors."""


class SlotMissing(SlotError, NotFound):
    """This store holds no such slot, or its data file is gone: no proof is possible."""


class CorruptSlot(SlotError):
    """A slot's data, tree or metadata on disk is damaged; no proof is given from it."""

    def __init__(self, message: str, *, root: bytes, slot: int) -> None:
        super().__init__(message)
        self.root = root
        self.slot = slot


class SlotMismatch(SlotError, ValueError):
    """The content given to :meth:`SlotStore.build` is not ``root`` (or not the expected slot)."""


@dataclass(frozen=True)
class SlotInfo:
    """One stored slot: what the host committed to on chain."""

    root: bytes
    slot: int
    layout: SlotLayout
    slot_root: bytes


def level_counts(rows: int) -> list[int]:
    """Node counts of the stored levels (level 5 first, up to the single root)."""
    counts = [-(-rows // GROUP)]
    while counts[-1] > 1:
        counts.append(-(-counts[-1] // 2))
    return counts


def _pair_level(nodes: Sequence[bytes]) -> list[bytes]:
    out = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
    if len(nodes) & 1:
        out.append(nodes[-1])
    return out


def _meta_check(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _regular_or_absent(path: Path) -> None:
    """Refuse to rename over anything but a regular file (a device, a FIFO, a symlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise SlotError(f"refusing to replace {path}: not a regular file")


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    parts = []
    while length:
        b = os.pread(fd, length, offset)
        if not b:
            break
        parts.append(b)
        length -= len(b)
        offset += len(b)
    return b"".join(parts)


class SlotStore:
    """Erasure-coded slots a host keeps, and the proofs it answers challenges with.

    Open with :meth:`open`; one process per directory (a second opener gets
    :class:`StoreLocked`). Methods may be called from several threads. ``durable=False``
    skips fsync (tests only).
    """

    def __init__(self, path: Path, *, durable: bool) -> None:
        self.path = path
        self.durable = durable
        self._lock = threading.Lock()
        self._closed = False
        path.mkdir(parents=True, exist_ok=True)
        self._tmp = path / "tmp"
        self._tmp.mkdir(exist_ok=True)
        self._lock_fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT | _O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StoreLocked(f"slot store {path} is open in another process") from None
        try:
            self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durable: bool = True) -> SlotStore:
        """Open (creating if needed) the slot directory and remove what a crash left."""
        return cls(Path(path), durable=durable)

    def close(self) -> None:
        """Release the directory lock. Idempotent."""
        if not self._closed:
            self._closed = True
            os.close(self._lock_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- names -----------------------------------------------------------------------------

    def _paths(self, root: bytes, slot: int) -> tuple[Path, Path, Path]:
        if len(root) != 32:
            raise ValueError(f"root has {len(root)} bytes, want 32")
        if type(slot) is not int or not 0 <= slot < 256:
            raise ValueError(f"slot {slot!r} is not a uint8")
        d = self.path / root.hex()
        return d / f"{slot}.slot", d / f"{slot}.tree", d / f"{slot}.json"

    def _check_open(self) -> None:
        if self._closed:
            raise SlotError("the slot store is closed")

    # -- building --------------------------------------------------------------------------

    def build(
        self,
        root: bytes,
        slot: int,
        layout: SlotLayout,
        read: ReadFn,
        *,
        expected_slot_root: bytes | None = None,
    ) -> bytes:
        """Encode slot ``slot`` of the content ``read`` gives, store it, return its slot root.

        While encoding, the content is hashed: it must be ``layout.size`` bytes with content
        root ``root``, else :class:`SlotMismatch` and nothing is kept. With
        ``expected_slot_root`` (the registrant's, from ``slotsRoot``) a different result also
        raises :class:`SlotMismatch`: a host compares before it commits stake. Memory is one
        batch of rows plus the level-5 nodes being written; the slot goes straight to disk.
        """
        self._check_open()
        data_path = self._paths(root, slot)[0]
        layout.check_slot(slot)
        token = secrets.token_hex(8)
        tmp_data, tmp_tree = self._tmp / f"{token}.slot", self._tmp / f"{token}.tree"
        try:
            slot_root = self._encode(root, slot, layout, read, tmp_data, tmp_tree)
            if expected_slot_root is not None and slot_root != expected_slot_root:
                raise SlotMismatch(
                    f"slot {slot} of {root_hex(root)} encodes to {slot_root.hex()}, "
                    f"the registration says {expected_slot_root.hex()}"
                )
            self._commit(root, slot, layout, slot_root, tmp_data, tmp_tree)
        except OSError as exc:
            if is_no_space(exc):
                raise StoreFull(exc.errno, f"no space left building a slot: {exc}") from exc
            raise
        finally:
            for p in (tmp_data, tmp_tree):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        log.info(
            "slot built",
            root=root_hex(root),
            slot=slot,
            rows=layout.rows,
            slot_root=slot_root.hex(),
            path=str(data_path),
        )
        return slot_root

    def _encode(
        self,
        root: bytes,
        slot: int,
        layout: SlotLayout,
        read: ReadFn,
        tmp_data: Path,
        tmp_tree: Path,
    ) -> bytes:
        content_tree = StreamingTreeHasher()
        slot_tree = StreamingTreeHasher()
        seen = 0

        def on_content(data: bytes | bytearray | memoryview) -> None:
            nonlocal seen
            seen += len(data)
            content_tree.extend(segment_leaf_hashes(data))

        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW
        dfd = os.open(tmp_data, flags, 0o644)
        try:
            tfd = os.open(tmp_tree, flags, 0o644)
            try:
                for _first, (share,) in iter_slot_batches(
                    read, layout, (slot,), on_content=on_content
                ):
                    write_all(dfd, share)
                    leaves = segment_leaf_hashes(share)
                    slot_tree.extend(leaves)
                    # Batches are multiples of 32 rows, so groups never straddle two batches.
                    write_all(
                        tfd,
                        b"".join(
                            merkle_root(leaves[i : i + GROUP]) for i in range(0, len(leaves), GROUP)
                        ),
                    )
                if seen != layout.size or content_tree.root() != root:
                    raise SlotMismatch(
                        f"the content read ({seen} bytes, root {content_tree.root().hex()}) is "
                        f"not {root_hex(root)} of {layout.size} bytes"
                    )
                top = self._write_upper_levels(tfd, layout.rows)
                if top != slot_tree.root():  # two independent computations of one tree
                    raise SlotError(f"slot tree levels disagree for {root_hex(root)}/{slot}")
                if self.durable:
                    os.fsync(dfd)
                    os.fsync(tfd)
            finally:
                os.close(tfd)
        finally:
            os.close(dfd)
        return top

    @staticmethod
    def _write_upper_levels(fd: int, rows: int) -> bytes:
        """Append levels 6.. to a tree file holding level 5; return the root."""
        counts = level_counts(rows)
        start = 0
        for count in counts[:-1]:
            out_at = start + count * _NODE
            written = out_at
            for first in range(0, count, _LEVEL_PIECE):
                n = min(_LEVEL_PIECE, count - first)
                raw = _pread_exact(fd, n * _NODE, start + first * _NODE)
                nodes = [raw[i : i + _NODE] for i in range(0, len(raw), _NODE)]
                if len(nodes) != n:
                    raise SlotError("tree file shorter than written")
                paired = b"".join(_pair_level(nodes))  # pieces are even: pairs never straddle
                os.pwrite(fd, paired, written)
                written += len(paired)
            start = out_at
        return _pread_exact(fd, _NODE, start)

    def _commit(
        self,
        root: bytes,
        slot: int,
        layout: SlotLayout,
        slot_root: bytes,
        tmp_data: Path,
        tmp_tree: Path,
    ) -> None:
        data_path, tree_path, meta_path = self._paths(root, slot)
        body = {
            "version": _META_VERSION,
            "root": root.hex(),
            "slot": slot,
            "size": layout.size,
            "data_shards": layout.data_shards,
            "slot_count": layout.slot_count,
            "rows": layout.rows,
            "slot_root": slot_root.hex(),
            "tree_skip": TREE_SKIP,
        }
        meta = json.dumps({**body, "check": _meta_check(body)}, sort_keys=True).encode()
        with self._lock:
            self._check_open()
            data_path.parent.mkdir(exist_ok=True)
            for p in (data_path, tree_path, meta_path):
                _regular_or_absent(p)
            with contextlib.suppress(FileNotFoundError):
                meta_path.unlink()  # uncommit first: never new data under old metadata
            os.replace(tmp_data, data_path)
            os.replace(tmp_tree, tree_path)
            if self.durable:
                fsync_dir(data_path.parent, strict=True)
            atomic_write(meta_path, meta, durable=self.durable)
            if self.durable:
                fsync_dir(data_path.parent, strict=True)

    # -- reading ---------------------------------------------------------------------------

    def info(self, root: bytes, slot: int) -> SlotInfo:
        """Layout and slot root of a stored slot; :class:`SlotMissing` if none."""
        self._check_open()
        _, _, meta_path = self._paths(root, slot)
        try:
            fd = os.open(meta_path, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            raise SlotMissing(f"no slot {slot} of {root_hex(root)} in {self.path}") from None
        except OSError as exc:
            raise CorruptSlot(f"slot metadata unreadable: {exc}", root=root, slot=slot) from exc
        with os.fdopen(fd, "rb") as f:
            raw = f.read(1 << 16)
        try:
            doc = json.loads(raw)
            body = {k: v for k, v in doc.items() if k != "check"}
            if doc.get("check") != _meta_check(body) or doc.get("version") != _META_VERSION:
                raise ValueError("checksum or version mismatch")
            if bytes.fromhex(doc["root"]) != root or doc["slot"] != slot:
                raise ValueError("metadata names another slot")
            if doc["tree_skip"] != TREE_SKIP:
                raise ValueError(f"tree_skip {doc['tree_skip']}")
            layout = SlotLayout(doc["size"], doc["data_shards"], doc["slot_count"])
            if layout.rows != doc["rows"]:
                raise ValueError("rows disagree with the layout")
            slot_root = bytes.fromhex(doc["slot_root"])
            if len(slot_root) != 32:
                raise ValueError("slot root is not 32 bytes")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptSlot(
                f"slot metadata {meta_path} is damaged: {exc}", root=root, slot=slot
            ) from exc
        return SlotInfo(root=root, slot=slot, layout=layout, slot_root=slot_root)

    def slot_root(self, root: bytes, slot: int) -> bytes:
        """The stored slot's root (what ``commit`` put on chain)."""
        return self.info(root, slot).slot_root

    def has(self, root: bytes, slot: int) -> bool:
        """True when the slot is committed here and its data file exists."""
        self._check_open()
        data_path, _, meta_path = self._paths(root, slot)
        return meta_path.is_file() and data_path.is_file()

    def slots(self) -> list[tuple[bytes, int]]:
        """Every committed (root, slot), sorted."""
        self._check_open()
        out = []
        for root, slot, _ in self._iter_meta():
            out.append((root, slot))
        return sorted(out)

    def _iter_meta(self) -> Iterator[tuple[bytes, int, Path]]:
        for d in self.path.iterdir():
            try:
                root = bytes.fromhex(d.name)
            except ValueError:
                continue
            if len(root) != 32 or not d.is_dir():
                continue
            for m in d.glob("*.json"):
                if m.stem.isdigit() and 0 <= int(m.stem) < 256 and m.is_file():
                    yield root, int(m.stem), m

    def remove(self, root: bytes, slot: int) -> None:
        """Delete a slot (metadata first, so a crash half-way leaves an orphan, not a lie)."""
        self._check_open()
        data_path, tree_path, meta_path = self._paths(root, slot)
        with self._lock:
            found = False
            for p in (meta_path, data_path, tree_path):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    found = True
            with contextlib.suppress(OSError):
                data_path.parent.rmdir()  # only when empty
        if found:
            log.info("slot removed", root=root_hex(root), slot=slot)

    # -- proving ---------------------------------------------------------------------------

    def prove(
        self, root: bytes, slot: int, indices: Sequence[int]
    ) -> list[tuple[bytes, list[bytes]]]:
        """``(segment, audit path)`` per index, in order, each verified against the slot root.

        Reads one 128 KiB group of the slot per distinct group sampled and one node per upper
        tree level; never the whole slot. Raises :class:`SlotMissing` (no such slot, or its
        data is gone), :class:`CorruptSlot` (bad bytes anywhere: no proof comes out of a
        damaged slot) and :class:`IndexError` for an index outside ``[0, rows)``.
        """
        info = self.info(root, slot)
        rows = info.layout.rows
        for i in indices:
            if type(i) is not int or not 0 <= i < rows:
                raise IndexError(f"sample index {i!r} outside a slot of {rows} rows")
        data_path, tree_path, _ = self._paths(root, slot)
        counts = level_counts(rows)
        try:
            dfd = os.open(data_path, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            raise SlotMissing(
                f"slot {slot} of {root_hex(root)} is committed but its data is gone"
            ) from None
        except OSError as exc:
            raise CorruptSlot(f"slot data unreadable: {exc}", root=root, slot=slot) from exc
        try:
            try:
                tfd = os.open(tree_path, os.O_RDONLY | _O_NOFOLLOW)
            except OSError as exc:
                raise CorruptSlot(
                    f"slot tree {tree_path} unreadable: {exc}", root=root, slot=slot
                ) from exc
            try:
                if os.fstat(dfd).st_size != info.layout.slot_bytes:
                    raise CorruptSlot(
                        f"slot file {data_path} has {os.fstat(dfd).st_size} bytes, "
                        f"want {info.layout.slot_bytes}",
                        root=root,
                        slot=slot,
                    )
                if os.fstat(tfd).st_size != sum(counts) * _NODE:
                    raise CorruptSlot(
                        f"slot tree {tree_path} has the wrong length", root=root, slot=slot
                    )
                return self._prove(info, dfd, tfd, counts, indices)
            finally:
                os.close(tfd)
        finally:
            os.close(dfd)

    def _prove(
        self,
        info: SlotInfo,
        dfd: int,
        tfd: int,
        counts: list[int],
        indices: Sequence[int],
    ) -> list[tuple[bytes, list[bytes]]]:
        rows = info.layout.rows
        offsets = [0]
        for c in counts[:-1]:
            offsets.append(offsets[-1] + c * _NODE)
        groups: dict[int, tuple[bytes, list[bytes]]] = {}
        upper: dict[int, list[bytes]] = {}
        out = []
        for index in indices:
            g = index >> TREE_SKIP
            if g not in groups:
                lo, hi = g << TREE_SKIP, min(rows, (g + 1) << TREE_SKIP)
                data = _pread_exact(dfd, (hi - lo) * SEGMENT_SIZE, lo * SEGMENT_SIZE)
                if len(data) != (hi - lo) * SEGMENT_SIZE:
                    raise CorruptSlot(
                        f"slot {info.slot} of {root_hex(info.root)} is truncated",
                        root=info.root,
                        slot=info.slot,
                    )
                groups[g] = (data, segment_leaf_hashes(data))
            if g not in upper:
                path, m = [], g
                for level, count in enumerate(counts[:-1]):
                    sibling = m ^ 1
                    if sibling < count:
                        node = _pread_exact(tfd, _NODE, offsets[level] + sibling * _NODE)
                        path.append(node)
                    m >>= 1
                upper[g] = path
            data, leaves = groups[g]
            local = index - (g << TREE_SKIP)
            segment = data[local * SEGMENT_SIZE : (local + 1) * SEGMENT_SIZE]
            proof = inclusion_proof(leaves, local) + upper[g]
            try:
                verify_inclusion(leaf_hash(segment), index, rows, proof, info.slot_root)
            except InvalidProof as exc:
                log.error(
                    "slot corrupt",
                    root=root_hex(info.root),
                    slot=info.slot,
                    index=index,
                    error=str(exc),
                )
                raise CorruptSlot(
                    f"slot {info.slot} of {root_hex(info.root)} is damaged near segment "
                    f"{index}: the proof does not reach the committed slot root",
                    root=info.root,
                    slot=info.slot,
                ) from exc
            out.append((segment, proof))
        return out

    def verify(self, root: bytes, slot: int) -> None:
        """Re-hash the whole slot and check every stored tree node; :class:`CorruptSlot` if off.

        Streams: memory stays one read block whatever the slot size. :meth:`prove` only checks
        the groups it samples; this is the full check for a maintenance pass.
        """
        info = self.info(root, slot)
        data_path, tree_path, _ = self._paths(root, slot)
        counts = level_counts(info.layout.rows)

        def corrupt(why: str) -> CorruptSlot:
            log.error("slot corrupt", root=root_hex(root), slot=slot, error=why)
            return CorruptSlot(f"slot {slot} of {root_hex(root)}: {why}", root=root, slot=slot)

        try:
            dfd = os.open(data_path, os.O_RDONLY | _O_NOFOLLOW)
        except FileNotFoundError:
            raise SlotMissing(f"slot {slot} of {root_hex(root)} has no data file") from None
        try:
            try:
                tfd = os.open(tree_path, os.O_RDONLY | _O_NOFOLLOW)
            except OSError as exc:
                raise corrupt(f"tree file unreadable: {exc}") from exc
            try:
                if os.fstat(dfd).st_size != info.layout.slot_bytes:
                    raise corrupt("data file has the wrong length")
                if os.fstat(tfd).st_size != sum(counts) * _NODE:
                    raise corrupt("tree file has the wrong length")
                tree = StreamingTreeHasher()
                block = 64 * GROUP  # rows per read: 8 MiB of slot data
                for first in range(0, info.layout.rows, block):
                    n = min(block, info.layout.rows - first)
                    data = _pread_exact(dfd, n * SEGMENT_SIZE, first * SEGMENT_SIZE)
                    leaves = segment_leaf_hashes(data)
                    tree.extend(leaves)
                    groups = b"".join(
                        merkle_root(leaves[i : i + GROUP]) for i in range(0, len(leaves), GROUP)
                    )
                    if groups != _pread_exact(tfd, len(groups), first // GROUP * _NODE):
                        raise corrupt(f"data or tree differ in rows {first}..{first + n - 1}")
                if tree.root() != info.slot_root:
                    raise corrupt("the data does not hash to the committed slot root")
                start = 0
                for count in counts[:-1]:
                    nxt = start + count * _NODE
                    for first in range(0, count, _LEVEL_PIECE):
                        n = min(_LEVEL_PIECE, count - first)
                        raw = _pread_exact(tfd, n * _NODE, start + first * _NODE)
                        paired = b"".join(
                            _pair_level([raw[i : i + _NODE] for i in range(0, len(raw), _NODE)])
                        )
                        if paired != _pread_exact(tfd, len(paired), nxt + first // 2 * _NODE):
                            raise corrupt("tree file levels are inconsistent")
                    start = nxt
            finally:
                os.close(tfd)
        finally:
            os.close(dfd)

    # -- recovery --------------------------------------------------------------------------

    def _recover(self) -> None:
        removed = 0
        for p in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                p.unlink()
                removed += 1
        for d in self.path.iterdir():
            try:
                root = bytes.fromhex(d.name)
            except ValueError:
                continue
            if len(root) != 32 or not d.is_dir() or d.is_symlink():
                continue
            for p in d.iterdir():
                stem, _, ext = p.name.partition(".")
                if ext in ("slot", "tree") and not (d / f"{stem}.json").exists():
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()  # data of a build that crashed before its metadata
                        removed += 1
                elif p.name.startswith(".") and p.name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()  # an atomic_write cut short
                        removed += 1
        if removed:
            log.info("slot store recovered", path=str(self.path), removed=removed)
