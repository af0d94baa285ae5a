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

import httpx

from node.content import root_hex

from ._daemon import API_FILE, TOKEN_FILE
from ._errors import ExitStatus, Failure, NodeError

if TYPE_CHECKING:
    from node.seal import ContentKey


class RemoteNode:
    """A running node's API. ``url`` like ``http://127.0.0.1:PORT``; ``token`` its secret."""

    def __init__(self, url: str, token: str, *, data_dir: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.data_dir = data_dir
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
        )

    def close(self) -> None:
        self._http.close()

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
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            obj = response.json()
        except ValueError:
            obj = {"error": f"HTTP {response.status_code}: {response.text[:200]}"}
        raise NodeError(Failure.from_json(obj))

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, path, json=body, **extra)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        self._raise_for(response)
        return response.json()

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
    ) -> dict[str, Any]:
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
        }
        return dict(self._call("POST", "/api/v1/add", body))

    def iter_content(self, root: bytes, key: ContentKey | None = None) -> Iterator[bytes]:
        if key is not None:  # ciphertext from the daemon, decrypted here
            from ._sealed import iter_opened

            return iter_opened(self, root, key)
        return self._iter_content(root)

    def _iter_content(self, root: bytes) -> Iterator[bytes]:
        try:
            with self._http.stream("GET", f"/api/v1/content/{root_hex(root)}") as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response)
                yield from response.iter_bytes(1 << 20)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def export(
        self, root: bytes, path: str | os.PathLike[str], key: ContentKey | None = None
    ) -> dict[str, Any]:
        if key is not None:
            from ._sealed import export_opened

            return export_opened(self, root, key, path)
        body = {"root": root_hex(root), "path": str(Path(path).absolute())}
        return dict(self._call("POST", "/api/v1/export", body))

    def verify(self, root: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/verify", {"root": root_hex(root)}))

    def pin(self, root: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/pin", {"root": root_hex(root)}))

    def unpin(self, root: bytes) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/unpin", {"root": root_hex(root)}))

    def rm(self, root: bytes, *, force: bool = False) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/rm", {"root": root_hex(root), "force": force}))

    def gc(self, *, unpinned: bool = False) -> dict[str, Any]:
        return dict(self._call("POST", "/api/v1/gc", {"unpinned": unpinned}))

    def publish(
        self, root: bytes, *, data_shards: int = 4, slots: int = 8, metadata_uri: str = ""
    ) -> dict[str, Any]:
        body = {
            "root": root_hex(root),
            "data_shards": data_shards,
            "slots": slots,
            "metadata_uri": metadata_uri,
        }
        return dict(self._call("POST", "/api/v1/publish", body, timeout=600.0))

    def host_commit(self, root: bytes, *, slot: int, stake: int) -> dict[str, Any]:
        body = {"root": root_hex(root), "slot": slot, "stake": str(stake)}
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
    ) -> dict[str, Any]:
        """Run a get in the daemon; ``progress`` gets its samples (dicts) as they come."""
        body = {
            "root": root_hex(root),
            "peers": list(peers),
            "output": str(Path(output).absolute()) if output is not None else None,
            "priority": priority,
            "limit_rate": limit_rate,
            "window": window,
            "receipts": receipts,
        }
        timeout = httpx.Timeout(None, connect=5.0)  # a transfer takes as long as it takes
        try:
            with self._http.stream("POST", "/api/v1/get", json=body, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_for(resp)
                for line in resp.iter_lines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if "progress" in item:
                        if progress is not None:
                            progress(item["progress"])
                    elif "failure" in item:
                        raise NodeError(Failure.from_json(item["failure"]))
                    elif "result" in item:
                        return dict(item["result"])
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
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
