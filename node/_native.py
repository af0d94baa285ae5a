"""Build the C tree kernel of :mod:`node.content._accel` (``python -m node._native``).

Lives outside ``node.content`` because building runs a compiler (a subprocess), which the
sans-IO layers may not. ``make setup`` calls it; a machine without a C compiler gets a
one-line note and the pure-Python tree. The SHA-NI path needs x86 intrinsics (GCC or clang);
when that compile fails, the kernel is built again without it (OpenSSL's SHA-256 only).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).parent / "content" / "_ctree.c"
LIBRARY = SOURCE.with_suffix(".so")


def _libcrypto() -> str | None:
    """Path of the libcrypto that Python's ``_hashlib`` is linked against (Linux)."""
    import _hashlib  # noqa: F401 (loads libcrypto into this process)

    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libcrypto.so" in path:
                    return path
    except OSError:
        pass
    return None


def build(cc: str = "cc", library: Path = LIBRARY) -> Path:
    """Compile the kernel to ``library`` (default: next to this file); raises ``RuntimeError``."""
    crypto = _libcrypto()
    if crypto is None:
        raise RuntimeError("no libcrypto found in this process (hashlib without OpenSSL?)")
    tmp = library.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cc, "-O2", "-shared", "-fPIC", "-Wall", "-o", str(tmp), str(SOURCE), crypto]
    try:
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError:
            # A compiler without the SHA-NI intrinsics (or <cpuid.h>): the OpenSSL path only.
            cmd.insert(1, "-DBCAI_NO_SHANI_BUILD")
            subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise RuntimeError(f"no C compiler ({cc})") from exc
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{' '.join(cmd)} failed: {exc.stderr.strip()}") from exc
    if library.is_symlink() or (library.exists() and not library.is_file()):
        tmp.unlink()
        raise RuntimeError(f"{library} exists and is not a regular file: not replaced")
    os.replace(tmp, library)  # our own temp file over our own build output
    return library


def main(argv: list[str]) -> int:
    cc = argv[0] if argv else os.environ.get("CC", "cc")
    try:
        print(f"built {build(cc)}")
    except RuntimeError as exc:
        print(f"note: tree kernel not built ({exc}); the pure-Python tree is used", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
