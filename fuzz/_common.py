"""Shared plumbing for the atheris harnesses in this directory.

The fuzz venv (``fuzz/.venv``) holds only atheris; the project and its dependencies come from
the main venv, whose site-packages is appended to ``sys.path`` here, so the fuzzer never
changes ``requirements.lock`` or the main environment.

Policy: an exception that is not one of the target's documented typed errors, or a broken
invariant (a length above a documented cap), is a *finding*. By default a finding is written
once per (exception type, raising line) to ``fuzz/findings/<target>-<hash>.txt`` with the
input in hex and the run continues, so one known bug does not stop a 1M-input run from
covering the rest of the code. ``FUZZ_STOP_ON_FINDING=1`` re-raises instead (atheris then
writes ``crash-*`` and exits), which is what you want when confirming a fix.
"""

from __future__ import annotations

import glob
import hashlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FINDINGS = REPO / "fuzz" / "findings"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
for site in glob.glob(str(REPO / ".venv" / "lib" / "python3.*" / "site-packages")):
    if site not in sys.path:
        sys.path.append(site)

STOP = os.environ.get("FUZZ_STOP_ON_FINDING") == "1"
_seen: set[str] = set()


class Finding(AssertionError):
    """A broken invariant that is not an exception raised by the target itself."""


def guarded(target: str, body: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Wrap ``body`` so untyped exceptions are recorded (or re-raised with STOP)."""

    def one_input(data: bytes) -> None:
        try:
            body(data)
        except Exception as exc:
            if STOP:
                raise
            tb = traceback.extract_tb(exc.__traceback__)
            where = f"{tb[-1].filename}:{tb[-1].lineno}" if tb else "?"
            key = f"{type(exc).__name__}@{where}"
            if key in _seen:
                return
            _seen.add(key)
            FINDINGS.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(key.encode()).hexdigest()[:12]
            path = FINDINGS / f"{target}-{name}.txt"
            path.write_text(
                f"target: {target}\nkey: {key}\nexception: {exc!r}\ninput_hex: {data.hex()}\n\n"
                + "".join(traceback.format_exception(exc))
            )
            print(f"FINDING {target}: {key} -> {path}", file=sys.stderr, flush=True)

    return one_input


def split_feeds(data: bytes) -> tuple[bytes, list[bytes]]:
    """Use the first byte to cut the rest into feeds, so any TCP/Noise split is explored.

    Returns (whole stream, feeds). ``step == 0`` means one feed of everything.
    """
    if not data:
        return b"", []
    step, rest = data[0], data[1:]
    if step == 0:
        return rest, [rest] if rest else []
    return rest, [rest[i : i + step] for i in range(0, len(rest), step)]
