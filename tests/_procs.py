"""Real ``bcai`` processes for tests: a running node (``bcai serve``) and one-shot commands.

Shared by the daemon, e2e and adversarial tests so each does not grow its own starter.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from node.cli import main

ENV = {**os.environ, "BCAI_INSECURE_FAST_KDF": "1", "BCAI_PASSPHRASE": "test-pass"}


def cli(data: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any, str]:
    """``bcai -d DATA --json ARGS`` in-process: (exit status, last JSON line or None, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *args], env=env or ENV, stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    return int(status), json.loads(lines[-1]) if lines else None, err.getvalue()


def run(data: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``bcai -d DATA --json ARGS`` as a process (a command that must not share our state)."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(data), "--json", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ServeProcess:
    """``bcai serve`` in its own process; ``info`` is its first JSON line (listen, api...)."""

    def __init__(
        self,
        data: Path,
        *extra: str,
        log_level: str = "info",
        env: dict[str, str] | None = None,
    ) -> None:
        self.data = data
        self.log_path = data / "serve.log"  # appended to: a restarted node keeps its history
        self.log: TextIO = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "node.cli", "-d", str(data), "--json", "serve"),
                *("--listen", "127.0.0.1:0", *extra),
            ],
            env={**(env or ENV), "BCAI_LOG_LEVEL": log_level},
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise AssertionError(f"serve did not start: {self.log_path.read_text()}")
        self.info: dict[str, Any] = json.loads(line)
        self.peer = f"{self.info['listen']}/{self.info['address']}"
        self.address: str = self.info["address"]

    def wait_log(self, text: str, timeout: float = 20) -> None:
        """Wait until ``text`` appears in the node's log."""
        deadline = time.monotonic() + timeout
        while text not in self.log_path.read_text():
            assert time.monotonic() < deadline, f"no {text!r} in {self.log_path.read_text()}"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()
