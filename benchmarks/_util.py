"""Shared helpers for the benchmarks: measured child processes, test files, result output.

Peak RSS comes from ``os.wait4`` (the kernel's ``ru_maxrss`` of exactly that process, KiB on
Linux), so no sampling can miss a short peak; ``psutil`` adds the machine description.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Measured:
    """One finished child process."""

    cmd: list[str]
    wall_s: float
    peak_rss_bytes: int
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(f"{self.cmd} failed ({self.returncode}): {self.stderr[-2000:]}")
        return self


# The measuring parent must be small: a forked child inherits its parent's RSS high-water
# mark, and Linux keeps it across exec, so wait4 from this (numpy-sized) process would report
# our own peak. A tiny launcher forks the command and reports the grandchild's wait4 figures.
_LAUNCHER = """
import json, os, sys, time
out = sys.argv[1]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"wall": wall, "rss_kib": usage.ru_maxrss,
               "code": os.waitstatus_to_exitcode(status)}, f)
"""


def run_measured(
    cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Measured:
    """Run ``cmd``; return wall time and its peak RSS (``wait4`` in a small launcher)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".json") as res,
    ):
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, res.name, *cmd]
        subprocess.run(launcher, stdout=out, stderr=err, env=env, cwd=cwd, check=False)
        r = json.loads(Path(res.name).read_text())
        out.seek(0)
        err.seek(0)
        return Measured(
            list(cmd),
            float(r["wall"]),
            int(r["rss_kib"]) * 1024,
            int(r["code"]),
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def precompile() -> None:
    """Write the ``.pyc`` files a normal ``pip install`` writes, before timing CLI processes.

    This machine sets ``PYTHONDONTWRITEBYTECODE=1`` and the virtualenv was installed without
    byte-code, so every ``bcai`` process would compile its imports from source (eth-account,
    web3: ~2 s of start-up that no installed node pays). Idempotent; seconds when done once.
    """
    import compileall
    import sysconfig

    for d in (Path(sysconfig.get_paths()["purelib"]), REPO / "node", REPO / "chain"):
        if d.is_dir():
            compileall.compile_dir(d, quiet=2, workers=2)


def ensure_random_file(path: Path, size: int, *, seed: int = 1) -> Path:
    """A file of ``size`` pseudo-random bytes (kept between runs when the size matches)."""
    if path.exists() and path.stat().st_size == size:
        return path
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        left = size
        while left:
            n = min(left, 64 * MiB)
            f.write(rng.bytes(n))
            left -= n
    os.replace(tmp, path)
    return path


def warm_cache(path: Path) -> None:
    """Read a file once so every measured command starts from the same (warm) page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MiB)
        while f.readinto(buf):
            pass


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_bytes"] = psutil.virtual_memory().total
        info["load_avg"] = os.getloadavg()
    except ImportError:
        pass
    return info


def write_json(name: str, obj: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")
    return path


def _default(o: Any) -> Any:
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def mib(n: float) -> str:
    return f"{n / MiB:.1f}"
