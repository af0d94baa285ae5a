"""``bcai serve`` for the benchmarks: one starter (small.py, swarm.py, multisource.py).

The node runs on 127.0.0.1 with an ephemeral peer port and its local API, no chain duties
unless asked; ``info`` is its JSON ready line (listen, address, api, metrics). The test
suite's twin is ``tests/_procs.ServeProcess`` (tests never import benchmarks).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class Daemon:
    """``bcai -d DATA --json serve --listen 127.0.0.1:0 [--no-chain] EXTRA...``."""

    def __init__(self, data: Path, *extra: str, env: dict[str, str], chain: bool = False) -> None:
        self.data = data
        self.log_path = data / "serve.log"
        self.log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "node.cli", "-d", str(data), "--json", "serve",
               "--listen", "127.0.0.1:0", *(() if chain else ("--no-chain",)), *extra]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.log.close()
            raise RuntimeError(f"bcai serve did not start: {self.log_path.read_text()[-2000:]}")
        self.info: dict[str, Any] = json.loads(line)
        self.peer = f"{self.info['listen']}/{self.info['address']}"
        self._api: Any = None

    @property
    def api(self) -> Any:
        """A ``node.app.RemoteNode`` on the daemon's local API."""
        if self._api is None:
            from node.app import RemoteNode

            token = (self.data / "run" / "api.token").read_text().strip()
            self._api = RemoteNode(self.info["api"], token, data_dir=self.data)
        return self._api

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def sent_bytes(self) -> int:
        """``bcai_sent_bytes_total`` from the daemon's /metrics (chunk bytes it served)."""
        with urllib.request.urlopen(self.info["metrics"], timeout=10) as resp:
            text = resp.read().decode()
        m = re.search(r"^bcai_sent_bytes_total (\S+)$", text, re.M)
        return int(float(m.group(1))) if m else 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
