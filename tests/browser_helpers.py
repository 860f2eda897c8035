"""What the real-browser tests share: Debian's Chromium through Playwright, or a clear skip
(a failure under CI=true: CI must not go green without its browser tests).

Nothing downloads a browser: Playwright launches /usr/bin/chromium (``apt-get install
chromium``; .ci/run does it), or LUFFY_TEST_CHROMIUM.
"""

import os
from pathlib import Path

from conftest import ROOT, skip_or_fail_in_ci

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
        skip_or_fail_in_ci(
            f"browser tests skipped: no Chromium at {CHROMIUM} (apt-get install chromium)",
            module_level=True,
        )
    try:
        import playwright.sync_api
    except ImportError:
        skip_or_fail_in_ci(
            "browser tests skipped: playwright not installed (requirements-dev.txt)",
            module_level=True,
        )
    return playwright.sync_api


# Where the storefront and admin browser tests keep what they saw when they fail (.gitignore'd).
ARTIFACTS = ROOT / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def open_context(browser, viewport=DESKTOP, **options):
    """A fresh browser context (its own cookies) in Chinese, with a generous default timeout."""
    context = browser.new_context(locale="zh-CN", viewport=viewport, **options)
    context.set_default_timeout(15_000)
    return context


def save_artifacts(name, *pages):
    """Full-page screenshots of ``pages`` under test-artifacts/; returns the paths written."""
    import contextlib

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    written = []
    for index, page in enumerate(pages):
        path = ARTIFACTS / f"{name}-{index}.png"
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
            written.append(str(path))
    return written


def sign_in(page, base_url, username, password, next_url=None):
    """Log in through the real form; waits until the login page is left."""
    target = base_url + "/login" + (f"?next={next_url}" if next_url else "")
    page.goto(target)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def serious_axe_violations(page):
    """axe-core's critical and serious violations on the page, as readable lines."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in ("critical", "serious"):
            targets = [" ".join(node["target"]) for node in violation["nodes"][:5]]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found
