"""Outputs and local faults: `-o` never replaces what it did not create; errors are one line.

Reproduces issue 9's edge faults with real `bcai` processes: `-o /dev/null` replaced the device
node with a regular file (here a private device node made with mknod, never the real one), a
full disk under `get` ended in an ExceptionGroup traceback and left `out.bin.part`, expected
conditions (wrong passphrase, locked store, read-only data dir) exited 1, the code reserved for
bugs, and there was no `bcai rm`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node._fs import OutputReplaced, output_target, replace_output, write_output
from node.cli import main
from node.cli._main import ExitStatus
from node.content import SlotLayout
from node.store import SlotStore, Store
from tests._procs import ServeProcess

ENV = {**os.environ, "BCAI_INSECURE_FAST_KDF": "1", "BCAI_PASSPHRASE": "outputs-pass"}
ENV.pop("BCAI_HOME", None)
CS = 256 * 1024
REPO = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------------


def run(data: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """``bcai -d DATA ARGS`` in a subprocess: exit status, stdout bytes, stderr text."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli", "-d", str(data), *args],
        env=env or ENV,
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr.decode()


def incli(data: Path, *args: str) -> dict:
    out, err = io.StringIO(), io.StringIO()
    status = main(["-d", str(data), "--json", *args], env=ENV, stdout=out, stderr=err)
    assert status == 0, out.getvalue() + err.getvalue()
    return json.loads(out.getvalue().splitlines()[-1])


def node_with(tmp: Path, name: str, data: bytes) -> tuple[Path, str]:
    home = tmp / name
    incli(home, "init")
    src = tmp / f"{name}.src"
    src.write_bytes(data)
    return home, incli(home, "add", "--chunk-size", "256KiB", str(src))["root"]


def one_error_line(err: str) -> str:
    """stderr holds exactly one `bcai: error:` line and no traceback."""
    assert "Traceback" not in err and "ExceptionGroup" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("bcai: error:")]
    assert len(lines) == 1, err
    assert "b'" not in lines[0], lines[0]
    return lines[0]


def device_node(tmp: Path) -> Path:
    """A private /dev/null twin (char 1:3) in tmp; skipped where mknod or opening it fails."""
    path = tmp / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.close(os.open(path, os.O_WRONLY))
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot make and open a character device here: {exc}")
    return path


class FifoReader:
    """A FIFO and a thread that reads everything written into it."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "fifo"
        os.mkfifo(self.path)
        self.data = b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as f:
            self.data = f.read()

    def join(self) -> bytes:
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.data


def is_char_device(path: Path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)


class Server(ServeProcess):
    def __init__(self, data: Path) -> None:
        super().__init__(data, "--no-chain", env=ENV)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, bytes]]:
    tmp = tmp_path_factory.mktemp("provider")
    data = os.urandom(3 * CS + 1234)
    home, root = node_with(tmp, "prov", data)
    server = Server(home)
    try:
        yield server, root, data
    finally:
        server.stop()


# -- node._fs ---------------------------------------------------------------------------------


def test_output_target_classifies_and_follows_links(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    reg.write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(reg)
    os.mkfifo(tmp_path / "fifo")
    assert output_target(tmp_path / "new") == output_target(tmp_path / "new")
    assert not output_target(tmp_path / "new").in_place
    assert output_target(link).path == reg.resolve() and not output_target(link).in_place
    assert output_target(tmp_path / "fifo").in_place
    with pytest.raises(IsADirectoryError):
        output_target(tmp_path)


def test_write_output_to_a_pipe_through_dev_fd() -> None:
    """``-o >(sha256sum)`` passes /dev/fd/N, a link realpath cannot follow."""
    r, w = os.pipe()
    try:
        target = output_target(f"/dev/fd/{w}")
        assert target.in_place and target.path == Path(f"/dev/fd/{w}")
        assert write_output(f"/dev/fd/{w}", [b"through ", b"a pipe"]) == 14
        os.close(w)
        w = -1
        assert os.read(r, 100) == b"through a pipe"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_replace_output_never_renames_over_a_non_regular_file(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.write_bytes(b"data")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputReplaced):
        replace_output(tmp, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and tmp.exists()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputReplaced):
        replace_output(tmp, link)
    assert link.is_symlink()


def test_write_output_to_a_device_writes_in_place(tmp_path: Path) -> None:
    dev = device_node(tmp_path)
    assert write_output(dev, [b"a" * 1000, b"b"]) == 1001
    assert is_char_device(dev)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no temp file left


# -- export -----------------------------------------------------------------------------------


def test_export_to_a_device_node_keeps_it(tmp_path: Path) -> None:
    home, root = node_with(tmp_path, "n", os.urandom(CS + 7))
    dev = device_node(tmp_path)
    status, out, err = run(home, "--json", "export", root, "-o", str(dev))
    assert status == 0, err
    assert json.loads(out)["size"] == CS + 7
    assert is_char_device(dev)  # on main: a regular file holding the content
    link = tmp_path / "null-link"
    link.symlink_to(dev)
    assert run(home, "export", root, "-o", str(link))[0] == 0
    assert link.is_symlink() and is_char_device(dev)


def test_export_to_a_fifo_writes_in_place(tmp_path: Path) -> None:
    data = os.urandom(2 * CS + 3)
    home, root = node_with(tmp_path, "n", data)
    fifo = FifoReader(tmp_path)
    status, _, err = run(home, "export", root, "-o", str(fifo.path))
    assert status == 0, err
    assert fifo.join() == data
    assert stat.S_ISFIFO(os.lstat(fifo.path).st_mode)


def test_export_through_a_symlink_writes_its_target(tmp_path: Path) -> None:
    data = os.urandom(CS + 1)
    home, root = node_with(tmp_path, "n", data)
    target = tmp_path / "target.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    assert run(home, "export", root, "-o", str(link))[0] == 0
    assert link.is_symlink() and target.read_bytes() == data


def test_export_dash_is_stdout(tmp_path: Path) -> None:
    data = os.urandom(CS + 99)
    home, root = node_with(tmp_path, "n", data)
    status, out, err = run(home, "--json", "export", root, "-o", "-")
    assert status == 0, err
    assert out == data and not (home / "-").exists() and not Path(REPO / "-").exists()
    summary = json.loads(err.strip().splitlines()[-1])  # on stderr: stdout holds the content
    assert summary == {"root": root, "path": "-", "size": len(data)}


def test_export_to_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    home, root = node_with(tmp_path, "n", b"small")
    status, _, err = run(home, "export", root, "-o", str(tmp_path))
    assert status == ExitStatus.USAGE
    one_error_line(err)


# -- get -o -----------------------------------------------------------------------------------


def test_get_to_a_device_node_keeps_it(tmp_path: Path, provider: tuple[Server, str, bytes]) -> None:
    server, root, _ = provider
    home = tmp_path / "recv"
    incli(home, "init")
    dev = device_node(tmp_path)
    status, _, err = run(home, "--json", "get", root, "--peer", server.peer, "-o", str(dev))
    assert status == 0, err
    assert is_char_device(dev)  # on main: renamed over by null.part
    assert not (tmp_path / "null.part").exists()


def test_get_to_a_fifo_and_to_stdout(tmp_path: Path, provider: tuple[Server, str, bytes]) -> None:
    server, root, data = provider
    home = tmp_path / "recv"
    incli(home, "init")
    fifo = FifoReader(tmp_path)
    status, _, err = run(home, "get", root, "--peer", server.peer, "-o", str(fifo.path))
    assert status == 0, err
    assert fifo.join() == data and stat.S_ISFIFO(os.lstat(fifo.path).st_mode)
    status, out, err = run(home, "--json", "get", root, "--peer", server.peer, "-o", "-")
    assert status == 0, err
    assert out == data  # the JSON summary went to stderr
    assert json.loads(err.strip().splitlines()[-1])["output"] == "-"


def test_get_to_a_regular_file_through_a_symlink(
    tmp_path: Path, provider: tuple[Server, str, bytes]
) -> None:
    server, root, data = provider
    home = tmp_path / "recv"
    incli(home, "init")
    target = tmp_path / "t.bin"
    link = tmp_path / "l.bin"
    link.symlink_to(target)
    status, _, err = run(home, "get", root, "--peer", server.peer, "-o", str(link))
    assert status == 0, err
    assert link.is_symlink() and target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.bin", "recv", "t.bin"]


def test_get_to_a_missing_directory_fails_before_connecting(tmp_path: Path) -> None:
    home = tmp_path / "recv"
    incli(home, "init")
    out = tmp_path / "no" / "such" / "out.bin"
    status, _, err = run(home, "get", "0x" + "22" * 32, "--peer", "127.0.0.1:1", "-o", str(out))
    assert status == ExitStatus.NOT_FOUND
    assert "no such directory" in one_error_line(err) and "connect" not in err


def test_get_onto_a_full_disk_is_one_line_and_leaves_no_part(
    tmp_path: Path, small_tmpfs: Path, provider: tuple[Server, str, bytes]
) -> None:
    server, root, data = provider
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (6 * 1024 * 1024 - 2 * CS))  # room for less than the content
    home = tmp_path / "recv"
    incli(home, "init")
    out = small_tmpfs / "out.bin"
    status, stdout, err = run(home, "get", root, "--peer", server.peer, "-o", str(out))
    assert status == ExitStatus.UNAVAILABLE, err
    assert "disk full" in one_error_line(err)  # on main: an ExceptionGroup traceback, exit 1
    assert not out.exists() and not (small_tmpfs / "out.bin.part").exists()
    filler.unlink()
    # The verified chunks stayed in the store: the re-run resumes from them.
    status, stdout, err = run(home, "--json", "get", root, "--peer", server.peer, "-o", str(out))
    assert status == 0, err
    assert json.loads(stdout)["resumed_chunks"] >= 1
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_get_with_the_store_on_a_full_disk(
    small_tmpfs: Path, provider: tuple[Server, str, bytes], tmp_path: Path
) -> None:
    server, root, _ = provider
    home = small_tmpfs / "home"
    incli(home, "init")
    (small_tmpfs / "filler").write_bytes(b"\0" * (6 * 1024 * 1024 - 2 * CS - 64 * 1024))
    status, stdout, err = run(home, "--json", "get", root, "--peer", server.peer)
    assert status == ExitStatus.UNAVAILABLE, err
    payload = json.loads(stdout)
    assert "disk full" in payload["error"] and payload["retryable"] is False
    assert "Traceback" not in err


# -- expected conditions: documented codes, one line -----------------------------------------


def test_wrong_passphrase_is_a_usage_error(tmp_path: Path) -> None:
    home = tmp_path / "n"
    incli(home, "init")
    env = {**ENV, "BCAI_PASSPHRASE": "wrong"}
    status, _, err = run(home, "get", "0x" + "11" * 32, "--peer", "127.0.0.1:1", env=env)
    assert status == ExitStatus.USAGE  # on main: 1
    assert "passphrase" in one_error_line(err)
    status, out, _ = run(home, "--json", "get", "0x" + "11" * 32, "--peer", "127.0.0.1:1", env=env)
    assert status == ExitStatus.USAGE and json.loads(out)["retryable"] is False


def test_locked_store_is_unavailable_and_retryable(tmp_path: Path) -> None:
    home, _ = node_with(tmp_path, "n", b"x")
    src = tmp_path / "f"
    src.write_bytes(b"y")
    with Store.open(home / "store"):
        status, out, _ = run(home, "--json", "add", str(src))
        text_status, _, text_err = run(home, "add", str(src))
    assert status == ExitStatus.UNAVAILABLE  # on main: 1
    payload = json.loads(out)
    assert payload["retryable"] is True and "in use by another process" in payload["error"]
    assert "b'" not in payload["error"]
    assert text_status == ExitStatus.UNAVAILABLE
    one_error_line(text_err)


def test_read_only_data_dir_says_so(tmp_path: Path, small_tmpfs: Path) -> None:
    home = small_tmpfs / "home"
    root = node_with(small_tmpfs, "home", b"read me")[1]
    try:
        subprocess.run(
            ["mount", "-o", "remount,ro", str(small_tmpfs)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot remount read-only: {exc}")
    status, out, err = run(home, "--json", "ls")
    payload = json.loads(out) if out else {}
    assert status == ExitStatus.UNAVAILABLE, (out, err)  # on main: 1, "in use by another"
    assert "read-only" in payload["error"] and "another process" not in payload["error"]
    assert payload["retryable"] is False
    status, _, err = run(home, "cat", root)
    assert status == ExitStatus.UNAVAILABLE
    assert "read-only" in one_error_line(err)


# -- bcai rm ----------------------------------------------------------------------------------


def _chunk_files(home: Path) -> set[str]:
    return {p.name for p in (home / "store" / "chunks").rglob("*") if p.is_file()}


def test_rm_removes_content_and_only_its_own_chunks(tmp_path: Path) -> None:
    shared = os.urandom(CS)
    a = shared + os.urandom(CS)
    b = shared + os.urandom(CS)
    home, root_a = node_with(tmp_path, "n", a)
    src_b = tmp_path / "b.src"
    src_b.write_bytes(b)
    root_b = incli(home, "add", "--pin", "--chunk-size", "256KiB", str(src_b))["root"]
    incli(home, "pin", root_a)
    assert len(_chunk_files(home)) == 3  # the shared chunk is stored once
    status, out, err = run(home, "--json", "rm", root_a)
    assert status == 0, err
    assert json.loads(out)["bytes_freed"] == CS
    assert len(_chunk_files(home)) == 2
    assert root_a not in {c["root"] for c in incli(home, "ls")["content"]}
    status, out, _ = run(home, "cat", root_b)
    assert status == 0 and out == b
    status, _, err = run(home, "rm", root_a)
    assert status == ExitStatus.NOT_FOUND
    one_error_line(err)


def test_rm_refuses_hosted_content_without_force(tmp_path: Path) -> None:
    data = os.urandom(3 * CS + 5)
    home, root = node_with(tmp_path, "n", data)
    with (
        Store.open(home / "store") as store,
        SlotStore.open(home / "slots") as slots,
    ):
        raw = bytes.fromhex(root[2:])
        slots.build(raw, 1, SlotLayout(len(data), 2, 4), store.reader(raw))
    status, out, _ = run(home, "--json", "rm", root)
    assert status == ExitStatus.USAGE
    assert json.loads(out)["slots"] == [1]
    assert root in {c["root"] for c in incli(home, "ls")["content"]}
    status, out, err = run(home, "--json", "rm", "--force", root)
    assert status == 0, err
    assert json.loads(out)["hosted_slots"] == [1]
    assert _chunk_files(home) == set()
    with contextlib.suppress(FileNotFoundError):
        assert not list((home / "store" / "chunks").rglob("*.part"))
