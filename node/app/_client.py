"""``RemoteNode``: the same operations as :class:`node.app.Node`, through a daemon's API.

The CLI uses it when ``<data dir>/run/api.json`` names a live daemon (the daemon holds the
store; LevelDB allows one process). Errors come back as the daemon's typed failures
(:class:`NodeError`), so exit codes and messages are the same either way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import ExitStatus, Failure, NodeError

if TYPE_CHECKING:
    from http.client import HTTPConnection, HTTPResponse

    from node.seal import ContentKey

#: Where a running daemon names itself (``run_daemon`` writes both; docs/operations.md).
API_FILE = Path("run") / "api.json"
TOKEN_FILE = Path("run") / "api.token"

CONNECT_TIMEOUT = 5.0  #: seconds to reach the API (it is on this machine)
CALL_TIMEOUT = 60.0  #: seconds for a plain call's answer; a get's stream has none


def _hex(root: bytes) -> str:
    return "0x" + root.hex()  # node.content.root_hex, without importing the content layer


class RemoteNode:
    """A running node's API. ``url`` like ``http://127.0.0.1:PORT``; ``token`` its secret.

    The client is the standard library's ``http.client`` (imported on the first call): a get
    through a daemon is one process start plus one HTTP exchange, and httpx with its
    dependencies costs more to import than the exchange itself (docs/decisions.md, D33).
    One connection per call: on loopback it costs ~0.1 ms, and there is no idle connection
    for the server to close under a later call.
    """

    def __init__(self, url: str, token: str, *, data_dir: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.data_dir = data_dir
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise NodeError(Failure(ExitStatus.UNAVAILABLE, f"bad node API URL {url!r:.200}"))
        self._host = parts.hostname
        try:
            self._port = parts.port or 80
        except ValueError:
            raise NodeError(
                Failure(ExitStatus.UNAVAILABLE, f"bad node API URL {url!r:.200}")
            ) from None
        self._headers = {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        """Nothing held between calls (kept for ``with`` and callers that close)."""

    def __enter__(self) -> RemoteNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> NodeError:
        return NodeError(
            Failure(
                ExitStatus.UNAVAILABLE,
                f"the node's API at {self.url} does not answer ({exc}); is `bcai serve` "
                "still running? (a stale run/api.json is removed when the daemon stops)",
                True,
            )
        )

    @staticmethod
    def _raise_for(response: HTTPResponse, raw: bytes | None = None) -> None:
        if response.status < 400:
            return
        if raw is None:
            raw = response.read()
        try:
            obj = json.loads(raw)
        except ValueError:
            text = raw[:200].decode("utf-8", "replace")
            obj = {"error": f"HTTP {response.status}: {text}"}
        raise NodeError(Failure.from_json(obj))

    def _open(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        timeout: float | None,
    ) -> tuple[HTTPConnection, HTTPResponse]:
        """Send one request; the response with its headers read (the body is the caller's)."""
        from http.client import HTTPConnection

        conn = HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT)
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(timeout)
            conn.request(method, path, body=data, headers=headers)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = CALL_TIMEOUT,
    ) -> Any:
        from http.client import HTTPException

        try:
            conn, response = self._open(method, path, body, timeout)
            try:
                raw = response.read()
            finally:
                conn.close()
        except (OSError, HTTPException) as exc:  # refused, reset, timed out, a garbled answer
            raise self._unreachable(exc) from None
        self._raise_for(response, raw)
        try:
            return json.loads(raw)
        except ValueError:
            raise NodeError(
                Failure(ExitStatus.ERROR, f"the node answered {path} with non-JSON: {raw[:200]!r}")
            ) from None

    # -- operations (the Node's, same arguments and results) -----------------------------------

    def status(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/v1/status"))

    def ls(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/v1/ls"))

    def add(
        self,
        source: str | os.PathLike[str],
        *,
        name: str | None = None,
        media_type: str | None = None,
        chunk_size: int | None = None,
        pin: bool = True,
        progress: Callable[[int], None] | None = None,
        encrypt: ContentKey | None = None,
        link: bool = False,
    ) -> dict[str, Any]:
        if encrypt is not None and link:
            raise NodeError(Failure(ExitStatus.USAGE, "--link stores no copy: not with --encrypt"))
        if encrypt is not None:  # sealed here; the daemon adds ciphertext, never sees the key
            from ._sealed import add_sealed

            return add_sealed(
                self, source, encrypt, name=name, media_type=media_type,
                chunk_size=chunk_size, pin=pin, progress=progress,
            )  # fmt: skip
        if not isinstance(source, (str, os.PathLike)):
            raise NodeError(
                Failure(
                    ExitStatus.USAGE,
                    "adding from standard input while a daemon runs is not supported; "
                    "write it to a file and add the file",
                )
            )
        path = Path(source).absolute()
        if not path.exists():
            raise FileNotFoundError(2, "No such file or directory", str(source))
        body = {
            "path": str(path),
            "name": name,
            "media_type": media_type,
            "chunk_size": chunk_size,
            "pin": pin,
            "link": link,
        }
        return dict(self._call("POST", "/api/v1/add", body))

    def iter_content(self, root: bytes, key: ContentKey | None = None) -> Iterator[bytes]:
        if key is not None:  # ciphertext from the daemon, decrypted here
            from ._sealed import iter_opened

            return iter_opened(self, root, key)
        return self._iter_content(root)

    def _iter_content(self, root: bytes) -> Iterator[bytes]:
        from http.client import HTTPException

        path = f"/api/v1/content/{_hex(root)}"
        try:
            conn, response = self._open("GET", path, None, CALL_TIMEOUT)
            try:
                self._raise_for(response)
                while data := response.read(1 << 20):
                    yield data
            finally:
                conn.close()
        except (OSError, HTTPException) as exc:
            raise self._unreachable(exc) from None

    def export(
        self, root: bytes, path: str | os.PathLike[str], key: ContentKey | None = None
    ) -> dict[str, Any]:
        if key is not None:
            from ._sealed import export_opened

            return export_opened(self, root, key, path)
        body = {"root": _hex(root), "path": str(Path(path).absolute())}
        return dict(self._call("POST", "/api/v1/export", body))

    def verify(self, root: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/verify", {"root": _hex(root)}))

    def pin(self, root: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/pin", {"root": _hex(root)}))

    def unpin(self, root: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/unpin", {"root": _hex(root)}))

    def rm(self, root: bytes, *, force: bool = False) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/rm", {"root": _hex(root), "force": force}))

    def gc(self, *, unpinned: bool = False) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/gc", {"unpinned": unpinned}))

    def publish(
        self, root: bytes, *, data_shards: int = 4, slots: int = 8, metadata_uri: str = ""
    ) -> dict[str, Any]:
        body = {
            "root": _hex(root),
            "data_shards": data_shards,
            "slots": slots,
            "metadata_uri": metadata_uri,
        }
        return dict(self._call("POST", "/api/v1/publish", body, timeout=600.0))

    def host_commit(self, root: bytes, *, slot: int, stake: int) -> dict[str, Any]:
        body = {"root": _hex(root), "slot": slot, "stake": str(stake)}
        return dict(self._call("POST", "/api/v1/host/commit", body, timeout=600.0))

    def set_limits(self, **limits: int | None) -> dict[str, Any]:
        return dict(self._call("PUT", "/api/v1/limits", dict(limits)))

    def fetch(
        self,
        root: bytes,
        peers: list[str] | tuple[str, ...] = (),
        *,
        output: str | os.PathLike[str] | None = None,
        priority: str = "normal",
        progress: Callable[[dict[str, Any]], None] | None = None,
        limit_rate: int | None = None,
        window: int = 16,
        receipts: bool = True,
        link: bool = False,
    ) -> dict[str, Any]:
        """Run a get in the daemon; ``progress`` gets its samples (dicts) as they come."""
        body = {
            "root": _hex(root),
            "peers": list(peers),
            "output": str(Path(output).absolute()) if output is not None else None,
            "priority": priority,
            "limit_rate": limit_rate,
            "window": window,
            "receipts": receipts,
            "link": link,
        }
        from http.client import HTTPException

        try:
            # no read timeout: a transfer takes as long as it takes (progress lines come while
            # bytes move, none while a limit or a queue holds it)
            conn, response = self._open("POST", "/api/v1/get", body, None)
            try:
                self._raise_for(response)
                while line := response.readline():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if not isinstance(item, dict):
                        raise ValueError(f"not a JSON object: {line[:200]!r}")
                    if "progress" in item:
                        if progress is not None:
                            progress(item["progress"])
                    elif "failure" in item:
                        raise NodeError(Failure.from_json(item["failure"]))
                    elif "result" in item:
                        return dict(item["result"])
            finally:
                conn.close()  # closed mid-stream (Ctrl-C), the daemon cancels the transfer
        except (OSError, HTTPException) as exc:
            raise self._unreachable(exc) from None
        except ValueError as exc:
            raise NodeError(
                Failure(ExitStatus.ERROR, f"unexpected answer from the node: {exc}")
            ) from None
        raise NodeError(Failure(ExitStatus.ERROR, "the node ended the transfer without a result"))


def find_daemon(data_dir: Path) -> RemoteNode | None:
    """The daemon serving ``data_dir``, if one runs (its ``run/api.json`` and a live pid)."""
    try:
        info = json.loads((Path(data_dir) / API_FILE).read_text())
        pid = int(info["pid"])
        url = str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        token = (Path(data_dir) / TOKEN_FILE).read_text().strip()
    except OSError as exc:
        raise NodeError(
            Failure(
                ExitStatus.UNAVAILABLE,
                f"a node runs on {data_dir} (pid {pid}) but its API token is unreadable: {exc}",
            )
        ) from None
    return RemoteNode(url, token, data_dir=Path(data_dir))


__all__ = ["RemoteNode", "find_daemon"]
