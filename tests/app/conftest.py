"""Browser fixtures for the dashboard tests: headless Debian Chromium driven by selenium.

``browser`` skips (with the reason) when chromium or chromedriver is missing, except on CI
(``CI=true``), where .ci/run installs them and their absence is a failure. ``artifact`` saves a
screenshot under the test's tmp path and, when ``BCAI_ARTIFACTS`` is set, copies it to
``tests/artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium WebDriver (one per test module; ``delete_all_cookies`` between
    tests is the test's business). Window 1280x900 so screenshots are comparable."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        reason = (
            f"{', '.join(missing)} missing: apt-get install chromium chromium-driver "
            "(.ci/run does this on CI)"
        )
        if _on_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--disable-background-networking",
        "--no-first-run",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def artifact(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """``artifact(driver, name)`` saves a PNG screenshot; returns its path under tmp_path (and
    copies it to tests/artifacts/<test>-<name>.png when BCAI_ARTIFACTS is set)."""

    def save(driver: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        assert driver.save_screenshot(str(path)), "screenshot failed"
        if os.environ.get("BCAI_ARTIFACTS"):
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copyfile(path, ARTIFACTS / f"{request.node.name}-{name}.png")
        return path

    return save
