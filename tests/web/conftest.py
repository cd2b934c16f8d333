"""The browser tests' platform (``finone up --demo`` in a subprocess, once per module) and
headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.finone_cli import run_finone
from tests.stack_runner import RunningStack, stack_env
from tests.web.harness import Account, Api, Platform, Tab, new_account

CHROMIUM = "/usr/bin/chromium"
# Root in a container, no GPU, no outside network: nothing Chromium would fetch for itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# The platform's own settings, chosen for a test that watches it for a few minutes:
# - every sign-in comes from 127.0.0.1, more than the 30 a minute one address may make;
# - a champion registered by a test is served within seconds, and its forecasts go out often;
# - the demo's own retraining stays small on a 2-core machine that also runs the browser.
PLATFORM_SETTINGS = {
    "FINONE_DEMO": "true",
    "FINONE_AUTH_REQUESTS_PER_IP": "1000",
    "FINONE_CHAMPION_POLL_S": "2",
    "FINONE_PREDICTION_PUBLISH_S": "3",
    "FINONE_DEMO_RETRAIN_SAMPLES": "1",
    "FINONE_DEMO_RETRAIN_EPOCHS": "2",
}

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = stack_env(tmp_path_factory.mktemp("web") / "data", **PLATFORM_SETTINGS)
    origin = f"http://127.0.0.1:{env['FINONE_API_PORT']}"
    # The app's origin is the gateway's: on a port of its own, the live feed must allow it.
    env["FINONE_ALLOWED_ORIGINS"] = json.dumps([origin])
    stack = RunningStack(env)
    try:
        state = stack.wait_until_up()
        admin = new_account("admin")
        created = run_finone(
            "create-admin",
            "--email",
            admin.email,
            env=env | {"FINONE_ADMIN_PASSWORD": admin.password},
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        yield Platform(stack, state, origin, admin)
    finally:
        stack.ensure_stopped()


@pytest.fixture(scope="module")
async def api(platform: Platform) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=platform.origin, timeout=30) as client:
        yield Api(client)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} is missing: `apt-get install chromium`"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def open_tab(
    browser: Browser, platform: Platform
) -> AsyncIterator[Callable[[], Awaitable[Tab]]]:
    """Opens tabs, each its own browser context (own cookies: own person); at the end checks
    that none of them did what no page may do."""
    tabs: list[Tab] = []

    async def new_tab() -> Tab:
        context = await browser.new_context(
            base_url=platform.origin,
            viewport={"width": 1280, "height": 900},
            color_scheme="light",
            locale="en-GB",
            timezone_id="UTC",
        )
        context.set_default_timeout(15_000)
        tab = Tab(await context.new_page(), platform)
        tabs.append(tab)
        return tab

    yield new_tab
    problems: list[str] = []
    for tab in tabs:
        await tab.settle()
        problems += tab.problems()
        await tab.page.context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
async def tab(open_tab: Callable[[], Awaitable[Tab]]) -> Tab:
    return await open_tab()


@pytest.fixture
def account() -> Account:
    return new_account()
