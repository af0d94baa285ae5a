"""docs/protocol.md is checked against the code, so the spec cannot drift from the codec.

The doc's tables (message kinds with their numbers and body caps, error codes, capability bits,
manifest keys, receipt refusal reasons, timers, admission defaults) and the numbers quoted in
its prose are parsed and compared with the constants in ``node.wire`` and the modules that own
them. The parser is strict: every table must have exactly the expected header, every row must
parse, and the set of rows must equal the set of constants, so a changed, missing or extra row
fails. The ``test_mutated_*`` tests prove that on edited copies of the doc.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from node import config, wire
from node.content import MAX_MANIFEST_BYTES, Manifest, tree_hash
from node.content._tree import chunk_root, root_from_subtrees
from node.receipt import WIRE_SIZE as RECEIPT_WIRE_SIZE
from node.receipt import ReceiptDomain
from node.transfer import Scheduler
from node.transfer._acceptance import DEFAULT_MAX_SKEW, REFUSAL_REASONS
from node.transfer._fetch import (
    CONTROL_TIMEOUT,
    GOODBYE_DRAIN,
    RECEIPT_EVERY_BYTES,
    RECEIPT_EVERY_CHUNKS,
)
from node.transfer._node import EMBEDDED_CHAIN_ID
from node.transport import open_peer_connection
from node.transport._noise_stream import DEFAULT_HANDSHAKE_TIMEOUT
from node.transport._peer import DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE, GOODBYE_TIMEOUT
from node.wire import _limits

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


class DocDrift(AssertionError):
    """The doc and the code disagree (or the doc no longer parses)."""


# -- a strict markdown table reader ---------------------------------------------------------


def _cells(line: str) -> list[str]:
    if not (line.startswith("|") and line.rstrip().endswith("|")):
        raise DocDrift(f"not a table row: {line!r}")
    return [c.strip() for c in line.strip()[1:-1].split("|")]


def table(text: str, header: list[str]) -> list[list[str]]:
    """Rows of the one table whose header is exactly ``header`` (cells stripped)."""
    lines = text.splitlines()
    found = [
        i
        for i, line in enumerate(lines)
        if line.startswith("|") and line.rstrip().endswith("|") and _cells(line) == header
    ]
    if len(found) != 1:
        raise DocDrift(f"expected one table with header {header}, found {len(found)}")
    i = found[0] + 1
    if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i].strip()):
        raise DocDrift(f"table {header}: no separator row")
    rows = []
    for line in lines[i + 1 :]:
        if not line.startswith("|"):
            break
        row = _cells(line)
        if len(row) != len(header):
            raise DocDrift(f"table {header}: row has {len(row)} cells: {line!r}")
        rows.append(row)
    if not rows:
        raise DocDrift(f"table {header}: empty")
    return rows


def _int(cell: str) -> int:
    if not re.fullmatch(r"\d+", cell):
        raise DocDrift(f"not a decimal number: {cell!r}")
    return int(cell)


def _camel_to_enum(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()


def _seconds(cell: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?) s\b", cell)
    if not m:
        raise DocDrift(f"no 'N s' in {cell!r}")
    return float(m.group(1))


def _unique(keys: list, what: str) -> None:
    if len(set(keys)) != len(keys):
        raise DocDrift(f"{what}: duplicate rows")


# -- the checks (each raises DocDrift) -------------------------------------------------------


def check_kinds(text: str) -> None:
    rows = table(text, ["kind", "hex", "name", "min body", "max body"])
    doc = {}
    for kind, hexa, name, lo, hi in rows:
        if not re.fullmatch(r"0x[0-9a-f]{2}", hexa) or int(hexa, 16) != _int(kind):
            raise DocDrift(f"kind {kind}: hex column {hexa!r} disagrees")
        doc[_int(kind)] = (_camel_to_enum(name), _int(lo), _int(hi))
    _unique([r[0] for r in rows], "kinds")
    code = {int(k): (k.name, *wire.BODY_BOUNDS[k]) for k in wire.Kind}
    if doc != code:
        raise DocDrift(f"kind table differs from node.wire: doc {doc} != code {code}")
    if sorted(t.KIND for t in wire.MESSAGE_TYPES) != sorted(wire.Kind):
        raise DocDrift("node.wire.MESSAGE_TYPES does not cover exactly the kinds")


def check_error_codes(text: str) -> None:
    rows = table(text, ["code", "name", "meaning"])
    _unique([r[0] for r in rows], "error codes")
    doc = {_int(code): name for code, name, _ in rows}
    code = {int(c): c.name for c in wire.ErrorCode}
    if doc != code:
        raise DocDrift(f"error code table differs: doc {doc} != code {code}")


def check_capabilities(text: str) -> None:
    rows = table(text, ["bit", "value", "name", "meaning"])
    _unique([r[0] for r in rows], "capability bits")
    doc = {}
    for bit, value, name, _ in rows:
        if not re.fullmatch(r"0x[0-9a-f]+", value) or int(value, 16) != 1 << _int(bit):
            raise DocDrift(f"capability bit {bit}: value {value!r} is not 1 << bit")
        doc[name] = 1 << _int(bit)
    code = {f.name: int(f) for f in wire.CapFlag}
    if doc != code:
        raise DocDrift(f"capability table differs: doc {doc} != code {code}")
    serve = int(wire.CapFlag.PROVIDER | wire.CapFlag.PARTIAL)
    for said in (
        f"`PROVIDER | PARTIAL` (0x{serve:x})",
        f"`RECEIPTS` (0x{serve | wire.CapFlag.RECEIPTS:x}) when",
        f"`RECEIPTS` (0x{int(wire.CapFlag.RECEIPTS):x}) if it signs receipts",
    ):
        if said not in text:
            raise DocDrift(f"doc does not say the reference advertises {said!r}")


def check_manifest(text: str) -> None:
    rows = table(text, ["key", "JSON type", "value, and what the receiver MUST check"])
    keys = [r[0].strip("`") for r in rows]
    _unique(keys, "manifest keys")
    code = sorted(Manifest(root=hashlib.sha256(b"").digest(), size=0).to_dict())
    if keys != code:
        raise DocDrift(f"manifest keys (sorted, as on the wire) differ: doc {keys} != {code}")
    if f"**manifest\nitself is at most {MAX_MANIFEST_BYTES} bytes**" not in text:
        raise DocDrift(f"manifest byte cap {MAX_MANIFEST_BYTES} not stated")
    wire_cap = wire.BODY_BOUNDS[wire.Kind.MANIFEST][1] - 32
    if f"manifest field of 2..{wire_cap} bytes" not in text:
        raise DocDrift(f"codec manifest cap {wire_cap} not stated")


def check_receipt_reasons(text: str) -> None:
    rows = table(text, ["reason", "refused when"])
    reasons = [r[0].strip("`") for r in rows]
    _unique(reasons, "receipt reasons")
    if set(reasons) != set(REFUSAL_REASONS):
        raise DocDrift(f"BAD_RECEIPT reasons differ: doc {reasons} != {REFUSAL_REASONS}")
    if f"more than {DEFAULT_MAX_SKEW:g} s" not in text:
        raise DocDrift(f"clock-skew bound {DEFAULT_MAX_SKEW:g} s not stated")


def _default(fn: Callable[..., object], name: str) -> object:
    return inspect.signature(fn).parameters[name].default


def check_timers(text: str) -> None:
    rows = table(text, ["timer", "value", "on expiry"])
    net = config.NetworkConfig()
    expected: dict[str, list[float]] = {
        "TCP connect": [float(_default(open_peer_connection, "connect_timeout"))],  # type: ignore[arg-type]
        "Noise handshake": [DEFAULT_HANDSHAKE_TIMEOUT, net.handshake_timeout],
        "idle": [DEFAULT_IDLE_TIMEOUT],
        "keep-alive": [DEFAULT_KEEPALIVE],
        "Goodbye drain": [GOODBYE_TIMEOUT, GOODBYE_DRAIN],
        "control answer": [CONTROL_TIMEOUT],
        "chunk request stall": [float(_default(Scheduler, "stall_timeout"))],  # type: ignore[arg-type]
    }
    seen = set()
    for timer, value, _ in rows:
        key = next((k for k in expected if timer.startswith(k)), None)
        if key is None:
            raise DocDrift(f"timer row {timer!r} is not checked against the code")
        seen.add(key)
        numbers = [float(n) for n in re.findall(r"(\d+(?:\.\d+)?) s\b", value)]
        want = expected[key]
        if _seconds(value) != want[0] or sorted(set(numbers)) != sorted(set(want)):
            raise DocDrift(f"timer {timer!r}: doc {numbers} != code {want}")
    if seen != set(expected):
        raise DocDrift(f"timer rows missing: {set(expected) - seen}")


def check_admission(text: str) -> None:
    rows = table(text, ["stage", "limit (default)", "when exceeded"])
    net = config.NetworkConfig()
    found = {}
    for _stage, limit, _ in rows:
        pairs = re.findall(r"`(\w+)` = (\d+(?:\.\d+)?)( s| MiB)?", limit)
        if not pairs:
            raise DocDrift(f"admission row without `name` = N: {limit!r}")
        for name, number, unit in pairs:
            found[name] = float(number) * (2**20 if unit == " MiB" else 1)
    code = {name: float(getattr(net, name)) for name in found if hasattr(net, name)}
    if found != code:
        raise DocDrift(f"admission defaults differ: doc {found} != NetworkConfig {code}")
    names = {
        "max_handshakes",
        "max_handshakes_per_ip",
        "handshake_timeout",
        "max_connections_per_peer",
        "max_connections_per_ip",
        "connections_high",
        "connections_low",
        "upload_queue_per_peer",
        "upload_queue",
        "upload_buffers",
    }
    if set(found) != names:
        raise DocDrift(f"admission table names {set(found)} != {names}")


def check_numbers(text: str) -> None:
    """Numbers quoted in prose, each tied to the constant it restates."""
    facts = {
        f"`length` {wire.MAX_MESSAGE_LEN} (a full ChunkRoots page)": "max message length",
        f"at most 65535 - 16 = **{wire.NOISE_MAX_PLAINTEXT}**": "Noise plaintext",
        f"| 44 | 1..{wire.MAX_CHUNK_PIECE} | bytes | data |": "ChunkData piece",
        f"### Identity payload ({wire.IDENTITY_PAYLOAD_LEN} bytes in v1)": "identity payload",
        f"({RECEIPT_WIRE_SIZE} bytes, `node.receipt`, format 2)": "receipt size",
        f"(hex `{wire.PROLOGUE.hex()}`)": "prologue",
        f"`max_message_size` (>= {wire.MAX_MESSAGE_LEN})": "identity max_message_size",
        f"1 <= count <= {wire.MAX_ROOTS_PER_PAGE}": "roots per page",
        f"1 <= n <= {wire.MAX_REQUEST_INDICES}": "request indices",
        f"`chainId = {EMBEDDED_CHAIN_ID}`": "embedded chain id",
        f"once {RECEIPT_EVERY_CHUNKS} chunks or {RECEIPT_EVERY_BYTES >> 20} MiB": "receipt period",
        f"# bcai-transfer wire protocol, version {wire.PROTOCOL_VERSION}": "version",
        f"The body is {wire.BODY_BOUNDS[wire.Kind.PRICE][0]} bytes (no receipt domain": "Price",
        f"or {wire.BODY_BOUNDS[wire.Kind.PRICE][1]} bytes (with the domain,\n"
        f"48 + 32 + {_limits.ADDRESS_LEN})": "Price with domain",
    }
    for needle, what in facts.items():
        if needle not in text:
            raise DocDrift(f"{what}: doc does not say {needle!r}")


def check_tree_vectors(text: str) -> None:
    """The hash vectors of section 8b, recomputed with node.content."""
    zeros = bytes(262145)
    c0, c1 = chunk_root(zeros[:262144]), chunk_root(zeros[262144:])
    wrong = hashlib.sha256(
        b"\x01" + hashlib.sha256(b"\x00" + c0).digest() + hashlib.sha256(b"\x00" + c1).digest()
    ).digest()
    root = root_from_subtrees([c0, c1])
    if root != tree_hash(zeros):
        raise DocDrift("root_from_subtrees disagrees with tree_hash")
    for value in (tree_hash(b"abc"), c0, c1, root, wrong, tree_hash(b"")):
        if f"`{value.hex()}`" not in text:
            raise DocDrift(f"vector {value.hex()} missing from the doc")


def check_price_domain(text: str) -> None:
    """Section 5.12a: the Price table's offsets and the hex example with a domain, encoded."""
    start = text.index("### 5.12a Price")
    section = text[start : text.index("### 5.13", start)]
    layout = [
        (_int(off), _int(size))
        for off, size, _t, _f in table(section, ["off", "size", "type", "field"])
    ]
    if layout != [(0, 32), (32, 16), (48, 32), (80, 20)]:
        raise DocDrift(f"Price layout {layout}")
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    msg = wire.Price(bytes(range(32)), 10**15, ReceiptDomain(31337, contract))
    hexes = ["".join(line.split()[0] for line in b.strip().splitlines()) for b in blocks]
    if wire.encode(msg).hex() not in hexes:
        raise DocDrift("the Price example with a domain is not what node.wire encodes")


def check_swarm(text: str) -> None:
    """Sections 5.20-5.22 (the swarm extension): entry layout and the reference's numbers."""
    from node.transfer import _swarm

    start = text.index("### 5.22 Peers")
    section = text[start : text.index("## 6.", start)]
    layout = [
        (_int(off), _int(size))
        for off, size, _t, _f in table(section, ["off", "size", "type", "field"])
    ]
    if (
        layout != [(0, 16), (16, 2), (18, _limits.ADDRESS_LEN)]
        or sum(size for _, size in layout) != _limits.PEER_ENTRY_LEN
    ):
        raise DocDrift(f"Peers entry layout {layout}")
    flag = int(wire.CapFlag.SWARM)
    facts = {
        f"`root(32) | entries ({_limits.PEER_ENTRY_LEN} * n, 0 <= n <= "
        f"{wire.MAX_PEERS_PER_MESSAGE})`": "Peers cap",
        f"the {_swarm.BOOK_PER_ROOT} most recent entries for {_swarm.BOOK_TTL:g} s, for at "
        f"most {_swarm.BOOK_ROOTS} roots": "peer book bounds",
        f"less than {_swarm.PEX_INTERVAL:g} s ago": "GetPeers rate",
        f"at most one batch per {_swarm.HAVE_UPDATE_INTERVAL:g} s": "Have update rate",
        f"at most {_swarm.MAX_SUBSCRIPTIONS} subscriptions": "subscriptions",
        f"keeps at most {_swarm.MAX_LEARNED} learned peers": "learned cap",
        f"| {flag.bit_length() - 1} | 0x{flag:x} | SWARM |": "flag",
    }
    flat = " ".join(text.split())
    for needle, what in facts.items():
        if needle not in flat:
            raise DocDrift(f"{what}: the doc does not say {needle!r}")


CHECKS = [
    check_kinds,
    check_error_codes,
    check_capabilities,
    check_manifest,
    check_receipt_reasons,
    check_timers,
    check_admission,
    check_numbers,
    check_tree_vectors,
    check_price_domain,
    check_swarm,
]


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_doc_matches_code(doc: str, check: Callable[[str], None]) -> None:
    check(doc)


# -- the checks catch drift: edited copies of the doc must fail -----------------------------


def _mutate(doc: str, old: str, new: str) -> str:
    assert doc.count(old) == 1, f"mutation anchor not unique: {old!r}"
    return doc.replace(old, new)


MUTATIONS = [
    # (check, exact text in the doc, replacement)
    (
        check_kinds,
        "| 32   | 0x20 | Request        | 40       | 4132     |",
        "| 32   | 0x20 | Request        | 40       | 4133     |",
    ),
    (
        check_kinds,
        "| 35   | 0x23 | Progress       | 44       | 44       |",
        "| 36   | 0x24 | Progress       | 44       | 44       |",
    ),
    (check_kinds, "| 23   | 0x17 | Price          | 48       | 100      |\n", ""),
    (
        check_kinds,
        "| 23   | 0x17 | Price          | 48       | 100      |",
        "| 23   | 0x17 | Price          | 48       | 48       |",
    ),
    (check_numbers, "(with the domain,\n48 + 32 + 20)", "(with the domain,\n48 + 32)"),
    (check_price_domain, "| 48 | 32 | u256 |", "| 48 | 20 | u256 |"),
    (check_price_domain, "0000000000007a69  chainId = 31337", "0000000000007a6a  chainId = 31337"),
    (
        check_kinds,
        "| 17   | 0x11 | Manifest       | 34       | 32800    |",
        "| 17   | 0x11 | Manifest       | 34       | 4128     |",
    ),
    (
        check_kinds,
        "| 1    | 0x01 | Hello          | 12       | 140      |",
        "| 1    | 0x02 | Hello          | 12       | 140      |",
    ),
    (check_error_codes, "| 13 | OUT_OF_RANGE |", "| 14 | OUT_OF_RANGE |"),
    (check_error_codes, "| 12 | BAD_CHUNK |", "| 12 | CORRUPT_CHUNK |"),
    (check_capabilities, "| 2 | 0x4 | PARTIAL |", "| 3 | 0x8 | PARTIAL |"),
    (check_capabilities, "| 1 | 0x2 | RECEIPTS |", "| 1 | 0x4 | RECEIPTS |"),
    (check_capabilities, "`PROVIDER | PARTIAL` (0x5)", "`PROVIDER | PARTIAL` (0x7)"),
    (check_swarm, "| 16 | 2 | u16 | port, 1..65535 |", "| 16 | 4 | u32 | port, 1..65535 |"),
    (check_swarm, "less than 5 s ago", "less than 2 s ago"),
    (check_kinds, "| 66   | 0x42 | Peers          | 32       | 1932     |", ""),
    (check_manifest, "| `segment_size` | integer |", "| `segment` | integer |"),
    (check_manifest, "itself is at most 4096 bytes**", "itself is at most 32768 bytes**"),
    (check_receipt_reasons, "| `nonce-used` |", "| `nonce-reused` |"),
    (check_timers, "| idle (nothing received) | 60 s |", "| idle (nothing received) | 90 s |"),
    (check_timers, "| Goodbye drain | 2 s after", "| Goodbye drain | 3 s after"),
    (check_admission, "`max_connections_per_ip` = 32", "`max_connections_per_ip` = 64"),
    (check_numbers, "`length` 65577 (a full", "`length` 65578 (a full"),
    (check_numbers, "(hex `626361692f31`)", "(hex `626361692f32`)"),
    (check_tree_vectors, "`ff2da689d390bfe8", "`ff2da689d390bfe9"),
]


@pytest.mark.parametrize(
    ("check", "old", "new"), MUTATIONS, ids=lambda x: getattr(x, "__name__", "")
)
def test_mutated_doc_fails(doc: str, check: Callable[[str], None], old: str, new: str) -> None:
    check(doc)  # the unmodified doc passes this check...
    with pytest.raises(DocDrift):
        check(_mutate(doc, old, new))  # ...and the edited copy does not


def test_table_reader_is_strict() -> None:
    good = "x\n| a | b |\n|---|--:|\n| 1 | 2 |\n\nafter\n"
    assert table(good, ["a", "b"]) == [["1", "2"]]
    with pytest.raises(DocDrift, match="found 0"):
        table(good, ["a", "c"])
    with pytest.raises(DocDrift, match="found 2"):
        table(good + good, ["a", "b"])
    with pytest.raises(DocDrift, match="cells"):
        table("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n", ["a", "b"])
    with pytest.raises(DocDrift, match="separator"):
        table("| a | b |\n| 1 | 2 |\n", ["a", "b"])
    with pytest.raises(DocDrift, match="decimal"):
        _int("0x10")
