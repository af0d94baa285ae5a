"""Start and stop a local anvil (Foundry's dev node, installed from npm).

``start_anvil()`` runs ``anvil --port 0`` (the OS picks a free port; anvil prints it), waits until
it answers JSON-RPC and returns an ``AnvilProcess``. Used by the test suite and ``bcai chain up
--anvil``; the latter detaches it (``detach=True``), records the pid so ``bcai chain down`` can
stop it, and gives it a block time: challenges draw their samples from the hash of the block
after the challenge, and proof periods are counted in blocks, so a chain that mines only on
transactions would leave an honest host waiting for a seed block that never comes (and slashed).
It also gives it a state file (``state=``: anvil's ``--state``, loaded at start, written every
``state_interval`` seconds and on exit, blocks and logs included), so a restarted dev chain still
holds its contracts, balances and history. ``stop_pid`` stops a detached anvil and waits until it
has written its state and released its port.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import ChainUnavailable, ChainUsageError

__all__ = [
    "DEFAULT_ANVIL_PORT",
    "AnvilProcess",
    "anvil_binary",
    "port_free",
    "start_anvil",
    "stop_pid",
]

#: The port ``bcai chain up --anvil`` tries first (anvil's own default).
DEFAULT_ANVIL_PORT = 8545

_REL = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
_LISTENING = re.compile(r"Listening on ([0-9.]+):(\d+)")


def anvil_binary() -> Path | None:
    """The anvil binary: $BCAI_ANVIL, node_modules under the repo root or cwd, then $PATH."""
    env = os.environ.get("BCAI_ANVIL")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parent.parent / _REL, Path.cwd() / _REL]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("anvil")
    return Path(found) if found else None


@dataclass
class AnvilProcess:
    """A running anvil. ``stop()`` terminates it (only if this object started it) and removes
    its log directory when ``start_anvil`` made one (no ``log_dir`` given)."""

    pid: int
    port: int
    log_path: Path
    hardfork: str
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _own_dir: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout)
        elif self.alive():
            os.kill(self.pid, signal.SIGTERM)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir is not None and not self.alive():
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> AnvilProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As anvil binds (SO_REUSEADDR): a port left in TIME_WAIT by a stopped anvil is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _answers(url: str) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=1.0) as resp:
            return "result" in json.loads(resp.read())
    except (OSError, ValueError):
        return False


def start_anvil(
    *,
    port: int = 0,
    hardfork: str = "prague",
    log_dir: Path | None = None,
    detach: bool = False,
    timeout: float = 30.0,
    block_time: float | None = None,
    state: Path | None = None,
    state_interval: float = 5.0,
    extra_args: list[str] | None = None,
) -> AnvilProcess:
    """Start anvil on 127.0.0.1 and wait until it answers ``eth_chainId``.

    ``port=0`` lets the OS choose. ``detach=True`` starts it in its own session so it outlives
    this process (used by ``bcai chain up --anvil``). ``block_time`` (seconds) mines a block
    that often, with or without transactions; ``None`` mines only on transactions (tests that
    mine explicitly). ``state``: a file anvil loads if it exists and writes every
    ``state_interval`` seconds and on exit.
    """
    binary = anvil_binary()
    if binary is None:
        raise ChainUsageError("anvil not found: run `npm ci` (node_modules/@foundry-rs/anvil)")
    own_dir = None  # made here: removed by stop()
    if log_dir is None:
        log_dir = own_dir = Path(tempfile.mkdtemp(prefix="bcai-anvil-"))
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "anvil.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the AnvilProcess
    args = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--hardfork", hardfork]
    if block_time is not None:
        if block_time <= 0:
            raise ChainUsageError(f"block time must be positive, got {block_time}")
        args += ["--block-time", f"{block_time:g}"]
    if state is not None:
        Path(state).parent.mkdir(parents=True, exist_ok=True)
        args += ["--state", str(state), "--state-interval", f"{state_interval:g}"]
    proc = subprocess.Popen(
        args + list(extra_args or []),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=detach,
    )
    deadline = time.monotonic() + timeout
    found_port: int | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            tail = log_path.read_text(errors="replace")[-2000:]
            raise ChainUnavailable(f"anvil exited with {proc.returncode}: {tail}")
        if found_port is None:
            match = _LISTENING.search(log_path.read_text(errors="replace"))
            if match:
                found_port = int(match.group(2))
        if found_port is not None and _answers(f"http://127.0.0.1:{found_port}"):
            return AnvilProcess(
                proc.pid, found_port, log_path, hardfork, _proc=proc, _log=log, _own_dir=own_dir
            )
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    log.close()
    raise ChainUnavailable(f"anvil did not answer within {timeout} s (log: {log_path})")


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (reaping it if it is our child: a zombie still takes signals)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return True
    except ChildProcessError:
        pass  # not our child: someone else reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def stop_pid(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM ``pid`` and wait until it exits (anvil writes its state file on the way out);
    SIGKILL after ``timeout`` (the state is then the last periodic dump). False if it was not
    running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while not _gone(pid) and time.monotonic() < deadline + 5:
        time.sleep(0.05)
    return True
