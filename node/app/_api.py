"""The daemon's local HTTP API (starlette on hypercorn's trio worker).

Bound to 127.0.0.1 (``[api] listen``, default an ephemeral port); every ``/api/v1`` route
needs ``Authorization: Bearer <token>`` with the token in ``<data dir>/run/api.token``
(mode 0600, like ipfs's RPC API and aria2's RPC secret: whoever can read the data dir may
drive the node). ``GET /metrics`` is Prometheus' exposition (no token: counters only, no
content, no keys). ``GET /`` is the dashboard (the token as ``?token=``). Routes and their
bodies: docs/operations.md, "Local API". Errors answer with the CLI's JSON error object
(``{"error", "status", "retryable", ...}``) and an HTTP status that matches it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from node.content import parse_root
from node.log import get_logger
from node.transfer import PeerAddr, Progress

from ._errors import ExitStatus, Failure, NodeError, classify, leaf

log = get_logger("node.api")

STATIC = Path(__file__).parent / "static"
NDJSON = "application/x-ndjson"

_HTTP_STATUS = {
    ExitStatus.USAGE: 400,
    ExitStatus.NOT_FOUND: 404,
    ExitStatus.VERIFY_FAILED: 422,
    ExitStatus.PEER_ERROR: 502,
    ExitStatus.CHAIN_ERROR: 502,
    ExitStatus.UNAVAILABLE: 503,
    ExitStatus.INTERRUPTED: 499,
    ExitStatus.ERROR: 500,
}


def failure_of(exc: BaseException, data_dir: Path | None = None) -> Failure:
    """The typed failure for ``exc``; an unexpected one is logged with its traceback."""
    err = leaf(exc)
    failure = classify(err, data_dir)
    if failure is None:
        log.error("request failed", error=repr(err), exc_info=err)
        failure = Failure(ExitStatus.ERROR, f"internal error: {type(err).__name__}: {err}")
    return failure


def _error(failure: Failure) -> JSONResponse:
    return JSONResponse(failure.to_json(), status_code=_HTTP_STATUS.get(failure.status, 500))


def _bad(message: str) -> NodeError:
    return NodeError(Failure(ExitStatus.USAGE, message))


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 1 << 20:
        raise _bad("request body too large")
    if not raw:
        return {}
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise _bad(f"request body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _bad("request body must be a JSON object")
    return obj


def _root(obj: dict[str, Any]) -> bytes:
    value = obj.get("root")
    if not isinstance(value, str):
        raise _bad("missing 'root' (0x followed by 64 hex digits)")
    return parse_root(value)


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"{key!r} must be a non-negative integer or null")
    return value


def _abs_path(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not os.path.isabs(value):
        raise _bad(f"{key!r} must be an absolute path")
    return value


def _progress_json(p: Progress) -> dict[str, Any]:
    return {
        "done_bytes": p.done_bytes,
        "total_bytes": p.total_bytes,
        "done_chunks": p.done_chunks,
        "total_chunks": p.total_chunks,
        "speed": round(p.speed),
        "eta": None if p.eta is None or not math.isfinite(p.eta) else round(p.eta, 1),
    }


def build_app(node: Any, token: str, nursery: trio.Nursery) -> Starlette:
    """The API of ``node`` (a :class:`node.app.Node`); long transfers run in ``nursery``,
    and so do the readers of the provider connections the node keeps between gets
    (``Node.keep_connections``: a get answers without waiting for its last ReceiptAck)."""
    keep = getattr(node, "keep_connections", None)
    if keep is not None:
        keep(nursery)
    want = f"Bearer {token}".encode()

    def authorised(request: Request) -> bool:
        got = request.headers.get("authorization", "").encode()
        if hmac.compare_digest(got, want):
            return True
        query = request.query_params.get("token", "").encode()
        return bool(query) and hmac.compare_digest(query, token.encode())

    def route(fn: Callable[[Request], Any], *, auth: bool = True) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            if auth and not authorised(request):
                failure = Failure(ExitStatus.USAGE, "missing or wrong API token (run/api.token)")
                return JSONResponse(failure.to_json(), status_code=401)
            try:
                return await fn(request)
            except Exception as exc:
                return _error(failure_of(exc, node.data_dir))

        return handler

    async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def status(request: Request) -> Response:
        return JSONResponse(await in_thread(node.status))

    async def ls(request: Request) -> Response:
        return JSONResponse(await in_thread(node.ls))

    async def add(request: Request) -> Response:
        obj = await _body(request)
        path = _abs_path(obj, "path")
        if path is None:
            raise _bad("missing 'path' (absolute path of a file the node can read)")
        name = obj.get("name")
        media_type = obj.get("media_type")
        if name is not None and not isinstance(name, str):
            raise _bad("'name' must be a string")
        if media_type is not None and not isinstance(media_type, str):
            raise _bad("'media_type' must be a string")
        result = await in_thread(
            node.add,
            path,
            name=name,
            media_type=media_type,
            chunk_size=_opt_int(obj, "chunk_size"),
            pin=bool(obj.get("pin", True)),
            link=obj.get("link") is True,
        )
        return JSONResponse(result)

    async def content(request: Request) -> Response:
        root = parse_root(request.path_params["root"])
        chunks = await in_thread(node.iter_content, root)  # raises before the first byte

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    data = await in_thread(next, chunks, None)
                    if data is None:
                        return
                    yield data
            finally:
                chunks.close()

        return StreamingResponse(body(), media_type="application/octet-stream")

    async def export(request: Request) -> Response:
        obj = await _body(request)
        path = _abs_path(obj, "path")
        if path is None:
            raise _bad("missing 'path' (absolute)")
        return JSONResponse(await in_thread(node.export, _root(obj), path))

    def simple(method: str, **extra: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
        async def handler(request: Request) -> Response:
            obj = await _body(request)
            kwargs = {key: conv(obj) for key, conv in extra.items()}
            return JSONResponse(await in_thread(getattr(node, method), _root(obj), **kwargs))

        return handler

    async def gc(request: Request) -> Response:
        obj = await _body(request)
        return JSONResponse(await in_thread(node.gc, unpinned=bool(obj.get("unpinned"))))

    async def limits(request: Request) -> Response:
        obj = await _body(request)
        unknown = set(obj) - {"upload", "download"}
        if unknown:
            raise _bad(f"unknown limit(s): {', '.join(sorted(unknown))} (upload, download)")
        for key, value in obj.items():
            if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
                raise _bad(f"{key!r} must be bytes/s (an integer or '50M'), or null: unlimited")
        kwargs = dict(obj)
        node.shaper.set_limits(**kwargs)  # InvalidArgument (exit 2) for a bad value
        log.info("limits changed", **kwargs)
        return JSONResponse(node.status()["limits"])

    async def transfers(request: Request) -> Response:
        return JSONResponse([t.to_json() for t in node.transfers.all()])

    async def get(request: Request) -> Response:
        obj = await _body(request)
        root = _root(obj)
        peers = obj.get("peers") or []
        if not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
            raise _bad("'peers' must be a list of HOST:PORT[/0xADDRESS] strings")
        peers = [str(PeerAddr.parse(p)) for p in peers]  # a bad one: 400 before any work
        priority = obj.get("priority", "normal")
        if not isinstance(priority, str):
            raise _bad("'priority' must be a string")
        output = _abs_path(obj, "output")
        window = _opt_int(obj, "window") or 16
        send, recv = trio.open_memory_channel[dict[str, Any]](64)
        cancel = trio.CancelScope()
        last = [0.0]
        complete = [False]  # the 100% sample went out: the fetch's closing one repeats it

        def progress(p: Progress) -> None:
            now = trio.current_time()
            done = p.done_bytes >= p.total_bytes
            if (now - last[0] >= 0.25 or done) and not complete[0]:
                last[0] = now
                complete[0] = done
                # a slow reader misses samples, never stalls the transfer
                with contextlib.suppress(trio.WouldBlock):
                    send.send_nowait({"progress": _progress_json(p)})

        async def task() -> None:
            async with send:
                with cancel:
                    try:
                        result = await node.fetch(
                            root,
                            peers,
                            output=output,
                            priority=priority,
                            progress=progress,
                            limit_rate=_opt_int(obj, "limit_rate"),
                            window=window,
                            receipts=bool(obj.get("receipts", True)),
                            link=obj.get("link") is True,
                        )
                    except Exception as exc:
                        await send.send({"failure": failure_of(exc, node.data_dir).to_json()})
                    else:
                        await send.send({"result": result})

        nursery.start_soon(task)

        async def body() -> AsyncIterator[bytes]:
            done = False
            try:
                async with recv:
                    async for item in recv:
                        done = done or "progress" not in item
                        yield (json.dumps(item, default=str) + "\n").encode()
            finally:
                if not done:  # the client went away (Ctrl-C): stop; state is saved
                    cancel.cancel()

        return StreamingResponse(body(), media_type=NDJSON)

    async def publish(request: Request) -> Response:
        obj = await _body(request)
        meta = obj.get("metadata_uri") or ""
        if not isinstance(meta, str):
            raise _bad("'metadata_uri' must be a string")
        result = await in_thread(
            node.publish,
            _root(obj),
            data_shards=_opt_int(obj, "data_shards") or 4,
            slots=_opt_int(obj, "slots") or 8,
            metadata_uri=meta,
        )
        return JSONResponse(result)

    async def host_commit(request: Request) -> Response:
        obj = await _body(request)
        slot, stake = _opt_int(obj, "slot"), obj.get("stake")
        if slot is None:
            raise _bad("missing 'slot'")
        if not isinstance(stake, str) or not stake.isdigit():
            raise _bad("'stake' must be a decimal string of wei")
        result = await in_thread(node.host_commit, _root(obj), slot=slot, stake=int(stake))
        return JSONResponse(result)

    async def metrics(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def dashboard(request: Request) -> Response:
        page = STATIC / "dashboard.html"
        if not page.exists():
            return PlainTextResponse("dashboard not built", status_code=404)
        return FileResponse(page, media_type="text/html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path)

    def force_flag(obj: dict[str, Any]) -> bool:
        return bool(obj.get("force"))

    routes = [
        Route("/", route(dashboard, auth=False)),
        Route("/static/{name:path}", route(static, auth=False)),
        Route("/metrics", route(metrics, auth=False)),
        Route("/api/v1/status", route(status)),
        Route("/api/v1/ls", route(ls)),
        Route("/api/v1/transfers", route(transfers)),
        Route("/api/v1/content/{root}", route(content)),
        Route("/api/v1/add", route(add), methods=["POST"]),
        Route("/api/v1/export", route(export), methods=["POST"]),
        Route("/api/v1/verify", route(simple("verify")), methods=["POST"]),
        Route("/api/v1/pin", route(simple("pin")), methods=["POST"]),
        Route("/api/v1/unpin", route(simple("unpin")), methods=["POST"]),
        Route("/api/v1/rm", route(simple("rm", force=force_flag)), methods=["POST"]),
        Route("/api/v1/gc", route(gc), methods=["POST"]),
        Route("/api/v1/get", route(get), methods=["POST"]),
        Route("/api/v1/limits", route(limits), methods=["PUT"]),
        Route("/api/v1/publish", route(publish), methods=["POST"]),
        Route("/api/v1/host/commit", route(host_commit), methods=["POST"]),
    ]
    return Starlette(routes=routes)


__all__ = ["build_app", "failure_of"]
