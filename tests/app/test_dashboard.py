"""The dashboard page in real headless Chromium (selenium), against a small starlette app that
serves node/app/static/dashboard.html and a status JSON that changes between polls (the shape of
``Node.status()``: transfers, peers, rates, receipts, chain, limits).

The browser is driven from a worker thread (``trio.to_thread``) while the app runs on hypercorn
in the test's trio loop; real TCP on 127.0.0.1, port 0.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

import node.app._metrics as metrics_module

PAGE = Path(metrics_module.__file__).parent / "static" / "dashboard.html"
TOKEN = "s3cret-token"
PROVIDER = "0x" + "ab" * 20
RECEIVER = "0x" + "cd" * 20
EVIL = '<img src=x id="pwned" onerror="document.title=\'pwned\'">'
TOTAL = 10 << 20


class FakeNode:
    """A status that moves: each poll advances the running transfer by 1 MiB."""

    def __init__(self) -> None:
        self.polls = 0
        self.unauthorised = 0

    def status(self) -> dict[str, Any]:
        self.polls += 1
        done = min(TOTAL, self.polls * (1 << 20))
        return {
            "address": RECEIVER,
            "version": "0.1.0",
            "pid": 1,
            "data_dir": "node-data",  # shown as text only
            "uptime": 3661.5 + self.polls,
            "listen": "127.0.0.1:7070",
            "api": "http://127.0.0.1:1",
            "metrics": "http://127.0.0.1:1/metrics",
            "transfers": [
                {
                    "id": "t1",
                    "root": "0x" + "11" * 32,
                    "direction": "in",
                    "priority": "high",
                    "state": "running" if done < TOTAL else "done",
                    "done_bytes": done,
                    "total_bytes": TOTAL,
                    "rate": 1048576.0,
                    "peers": [PROVIDER],
                    "started": 0.0,
                    "finished": None,
                    "error": None,
                },
                {
                    "id": "t0",
                    "root": "0x" + "22" * 32,
                    "direction": "in",
                    "priority": "normal",
                    "state": "failed",
                    "done_bytes": 0,
                    "total_bytes": 5,
                    "rate": 0.0,
                    "peers": [],
                    "started": 0.0,
                    "finished": 1.0,
                    "error": EVIL,
                },
            ],
            "peers": [
                {
                    "address": PROVIDER,
                    "inbound": False,
                    "outbound": True,
                    "bytes_in": done,
                    "bytes_out": 0,
                    "chunks_ok": self.polls,
                    "chunks_bad": 1,
                    "latency_ms": 12.5,
                    "reliability": 0.9,
                    "outstanding": 3,
                    "window": 16,
                }
            ],
            "rates": {
                "rate_in": 1048576.0,
                "rate_out": 0.0,
                "bytes_in": done,
                "bytes_out": 0,
                "chunk_success_ratio": 0.95,
                "receive_p95_ms": 40.0,
                "serve_p95_ms": None,
                "connections": {"inbound": 0, "outbound": 1},
                "requests_outstanding": 3,
                "chain_queue": 4,
                "cache_hit_ratio": None,
            },
            "contents": {"count": 2, "bytes": 12345},
            "receipts": {"pending": 7, "submitted": 3},
            "chain": {
                "chain_up": True,
                "rounds": 5,
                "last_error": None,
                "answers": {"answered": 2, "pending": 0},
                "validator": {
                    "issued_this_run": 4,
                    "slashed_this_run": 1,
                    "refused_this_run": 0,
                    "book": {"open": 1},
                },
                "rewards": {"claimed_wei": 42},
            },
            "limits": {"upload": None, "download": 2097152},
        }


def status_app(node: FakeNode) -> Starlette:
    async def page(request: Request) -> Response:
        return FileResponse(PAGE, media_type="text/html")

    async def status(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            node.unauthorised += 1
            return JSONResponse({"error": "missing or wrong API token"}, status_code=401)
        return JSONResponse(node.status())

    return Starlette(routes=[Route("/", page), Route("/api/v1/status", status)])


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: serve(app, config, task_status=task_status))
        yield binds[0]
        nursery.cancel_scope.cancel()


def wait_for(driver: Any, cond: Callable[[Any], Any], timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(cond)


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def fraction(driver: Any, transfer: str) -> float:
    from selenium.webdriver.common.by import By

    bar = driver.find_element(By.CSS_SELECTOR, f'#transfers tr[data-id="{transfer}"] .bar')
    return float(bar.get_attribute("data-fraction"))


async def test_dashboard_shows_moving_transfer_peers_and_receipts(
    browser: Any, artifact: Callable[[Any, str], Path]
) -> None:
    from selenium.webdriver.common.by import By

    node = FakeNode()
    with trio.fail_after(60):
        async with serving(status_app(node)) as url:

            def drive() -> dict[str, Any]:
                browser.get(f"{url}/#token={TOKEN}")
                wait_for(browser, lambda d: "live" in text(d, "#conn-state"))
                wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-id="t1"]'))
                first = fraction(browser, "t1")
                wait_for(browser, lambda d: fraction(d, "t1") >= first + 0.2)
                seen = {
                    "first": first,
                    "later": fraction(browser, "t1"),
                    "url": browser.current_url,
                    "stored": browser.execute_script("return sessionStorage.getItem('bcai.token')"),
                    "peers": [
                        tr.get_attribute("data-address")
                        for tr in browser.find_elements(By.CSS_SELECTOR, "#peers tbody tr")
                    ],
                    "peer_row": text(browser, "#peers tbody tr"),
                    "receipts": text(browser, "#receipts"),
                    "challenges": text(browser, "#challenges"),
                    "rewards": text(browser, "#rewards"),
                    "limits": text(browser, "#limits"),
                    "rates": text(browser, "#rates"),
                    "address": text(browser, "#address"),
                    "error_cell": browser.find_element(
                        By.CSS_SELECTOR, '#transfers tr[data-id="t0"] td.err'
                    ).get_attribute("textContent"),
                    "injected": browser.find_elements(By.ID, "pwned"),
                    "title": browser.title,
                }
                seen["shot"] = artifact(browser, "dashboard")
                return seen

            seen = await trio.to_thread.run_sync(drive)
    # the bar moved between polls, and the page polls about once a second
    assert 0 < seen["first"] < seen["later"] <= 1
    assert node.polls >= 3 and node.unauthorised == 0
    # the token left the address bar for sessionStorage
    assert TOKEN not in seen["url"] and seen["stored"] == TOKEN
    assert seen["address"] == RECEIVER
    assert seen["peers"] == [PROVIDER]
    assert "12.5 ms" in seen["peer_row"] and "90.0%" in seen["peer_row"]
    assert "pending" in seen["receipts"] and "7" in seen["receipts"]
    assert "issued" in seen["challenges"] and "4" in seen["challenges"]
    assert "claimed wei" in seen["rewards"] and "42" in seen["rewards"]
    assert "unlimited" in seen["limits"] and "2.00 MiB/s" in seen["limits"]
    assert "1.00 MiB/s" in seen["rates"] and "40.0 ms" in seen["rates"]
    # a peer-supplied error string is text, never markup
    assert seen["error_cell"] == EVIL and seen["injected"] == []
    assert seen["title"] != "pwned"
    assert seen["shot"].stat().st_size > 10_000


async def test_dashboard_asks_for_a_token_and_recovers(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    node = FakeNode()
    with trio.fail_after(60):
        async with serving(status_app(node)) as url:

            def drive() -> dict[str, Any]:
                browser.get(f"{url}/")
                browser.execute_script("sessionStorage.clear()")
                browser.get(f"{url}/")  # no token anywhere: the form, no API call
                wait_for(browser, lambda d: d.find_element(By.ID, "token-input").is_displayed())
                polls_without = node.polls
                box = browser.find_element(By.ID, "token-input")
                box.send_keys("wrong")
                box.submit()
                wait_for(browser, lambda d: "refused" in text(d, "#token-msg"))
                box = browser.find_element(By.ID, "token-input")
                box.send_keys(TOKEN)
                box.submit()
                wait_for(browser, lambda d: "live" in text(d, "#conn-state"))
                return {
                    "polls_without": polls_without,
                    "form_hidden": not browser.find_element(By.ID, "token-form").is_displayed(),
                }

            seen = await trio.to_thread.run_sync(drive)
    assert seen["polls_without"] == 0
    assert node.unauthorised >= 1 and node.polls >= 1
    assert seen["form_hidden"]


# -- against real daemons (``bcai serve`` processes) doing a real transfer ----------------------


def _metric(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"{name}{labels} not exposed")


def test_dashboard_of_real_daemons_during_a_transfer(
    tmp_path: Path, browser: Any, artifact: Callable[[Any, str], Path]
) -> None:
    import os
    import threading

    import httpx
    from selenium.webdriver.common.by import By

    from tests._procs import ServeProcess, cli

    size = 12 << 20
    prov, recv = tmp_path / "prov", tmp_path / "recv"
    for data in (prov, recv):
        status, _, err = cli(data, "init")
        assert status == 0, err
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(size))
    status, added, err = cli(prov, "add", str(src))
    assert status == 0, err
    root = added["root"]
    with ServeProcess(prov) as server, ServeProcess(recv) as receiver:
        tokens = {d: (d / "run" / "api.token").read_text().strip() for d in (prov, recv)}
        api = receiver.info["api"]
        outcome: list[dict[str, Any]] = []

        def get() -> None:  # the receiver's daemon fetches, capped at 3 MiB/s: ~4 s
            with httpx.stream(
                "POST",
                api + "/api/v1/get",
                json={"root": root, "peers": [server.peer], "limit_rate": 3 << 20},
                headers={"Authorization": f"Bearer {tokens[recv]}"},
                timeout=120,
            ) as resp:
                for line in resp.iter_lines():
                    if line.strip():
                        outcome.append(json.loads(line))

        fetcher = threading.Thread(target=get, daemon=True)
        fetcher.start()
        browser.get(f"{api}/#token={tokens[recv]}")
        wait_for(browser, lambda d: "live" in text(d, "#conn-state"))
        row = '#transfers tbody tr[data-state="running"]'
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), timeout=30)
        tid = browser.find_element(By.CSS_SELECTOR, row).get_attribute("data-id")
        first = fraction(browser, tid)
        wait_for(browser, lambda d: fraction(d, tid) > 0 and fraction(d, tid) != first)
        moved = fraction(browser, tid)
        artifact(browser, "receiver-running")
        wait_for(browser, lambda d: fraction(d, tid) == 1.0, timeout=60)
        wait_for(
            browser,
            lambda d: (
                server.address
                in [
                    tr.get_attribute("data-address")
                    for tr in d.find_elements(By.CSS_SELECTOR, "#peers tbody tr")
                ]
            ),
        )
        received_text = text(browser, "#rates")
        artifact(browser, "receiver")
        fetcher.join(timeout=60)
        # the provider's dashboard: its peer is the receiver, and it holds the receipt
        browser.get(f"{server.info['api']}/#token={tokens[prov]}")
        wait_for(browser, lambda d: "live" in text(d, "#conn-state"))
        wait_for(
            browser,
            lambda d: (
                receiver.address
                in [
                    tr.get_attribute("data-address")
                    for tr in d.find_elements(By.CSS_SELECTOR, "#peers tbody tr")
                ]
            ),
        )
        provider_receipts = text(browser, "#receipts")
        artifact(browser, "provider")
        sent = httpx.get(server.info["metrics"]).text
        got = httpx.get(receiver.info["metrics"]).text
        assert server.stop() == 0 and receiver.stop() == 0
    assert outcome and "result" in outcome[-1], outcome[-1:]
    assert first < moved < 1.0 or 0 < moved < 1.0
    assert "MiB" in received_text
    assert re.search(r"pending\s+1\b", provider_receipts), provider_receipts
    assert re.search(r"bytes pending\s+12.0 MiB", provider_receipts), provider_receipts
    assert _metric(sent, "bcai_sent_bytes_total") == size
    assert _metric(sent, "bcai_peer_sent_bytes_total", peer=receiver.address) == size
    assert _metric(got, "bcai_received_bytes_total") == size
    assert _metric(got, "bcai_peer_received_bytes_total", peer=server.address) == size
