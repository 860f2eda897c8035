"""What the real-browser tests share: Debian's Chromium through Playwright, or a clear skip.

Nothing downloads a browser: Playwright launches /usr/bin/chromium (``apt-get install
chromium``; .ci/run does it), or LUFFY_TEST_CHROMIUM.
"""

import os
from pathlib import Path

import pytest
from conftest import ROOT

CHROMIUM = Path(os.environ.get("LUFFY_TEST_CHROMIUM", "/usr/bin/chromium"))
# As the machine's notes prescribe: no sandbox as root, and no background connections that a
# closed network would refuse.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"


def playwright_or_skip():
    """Playwright's sync API; skips the calling test module, saying why, without Chromium."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium)",
            allow_module_level=True,
        )
    return pytest.importorskip(
        "playwright.sync_api",
        reason="browser tests skipped: playwright not installed (requirements-dev.txt)",
    )
