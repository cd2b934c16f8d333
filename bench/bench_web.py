"""The web app's figures, in Debian's Chromium (headless, through Playwright) against a real
`finone up --demo` on free ports:

- initial JavaScript, gzipped (the entry chunk and what index.html preloads); target <= 300 KB;
- time from pressing "Sign in" to the first live price on the Markets page (median of runs);
- the main thread's busy share with an instrument page open while the feed floods it with
  1,000 book updates and 200 trades a second (Chrome's own TaskDuration over wall time, median
  of windows); target < 50%.

`.venv/bin/python bench/bench_web.py [--runs 3] [--flood-s 30]` (`make web` first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.async_api import Browser, Page, async_playwright

sys.path.insert(0, str(Path(__file__).parent))

from platform_process import platform_env, start_platform, stop_platform  # noqa: E402

from actors.publisher import RedisPublisher  # noqa: E402
from cluster.state import read_state  # noqa: E402
from core.events import BookDelta, BookSnapshot, Trade  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "bench horse battery staple"
FLOOD_INSTRUMENT = "bench:FLOOD-USD"
BOOK_UPDATES_PER_S = 1_000
TRADES_PER_S = 200
WINDOW_S = 5.0
# True once a Markets row shows a price in its "Last" column.
LIVE_PRICE_SHOWN = """() => {
  for (const table of document.querySelectorAll("table")) {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent?.trim());
    const last = heads.findIndex((text) => text?.startsWith("Last"));
    if (last < 0) continue;
    for (const row of table.querySelectorAll("tbody tr")) {
      if (/[0-9]/.test(row.children[last]?.textContent ?? "")) return true;
    }
  }
  return false;
}"""


def initial_js_kb() -> float:
    result = subprocess.run(
        ["node", str(ROOT / "web" / "scripts" / "bundle-size.mjs"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.stdout)["initial_js_gzip_bytes"]) / 1024


async def sign_up(api: str) -> str:
    email = f"bench-{random.getrandbits(48):012x}@example.com"
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        response = await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        response.raise_for_status()
    return email


async def sign_in(page: Page, api: str, email: str) -> float:
    """Sign in from the sign-in page; the seconds from the click to a live price on Markets."""
    await page.goto(f"{api}/signin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    clicked = time.monotonic()
    await page.get_by_role("button", name="Sign in").click()
    # A Markets row whose last price is no longer the placeholder.
    await page.wait_for_function(LIVE_PRICE_SHOWN, timeout=120_000)
    return time.monotonic() - clicked


async def first_price_s(browser: Browser, api: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        email = await sign_up(api)
        context = await browser.new_context()
        page = await context.new_page()
        times.append(await sign_in(page, api, email))
        await context.close()
    return times


def book_levels(
    mid: float, rng: random.Random
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    bids = [(f"{mid - 0.5 - i * 0.5:.2f}", f"{rng.uniform(0.1, 5):.4f}") for i in range(50)]
    asks = [(f"{mid + 0.5 + i * 0.5:.2f}", f"{rng.uniform(0.1, 5):.4f}") for i in range(50)]
    return bids, asks


async def flood(redis_url: str, stop: asyncio.Event) -> tuple[int, float]:
    """Book deltas and trades at the target rates until ``stop``; the events published and
    the seconds it took."""
    rng = random.Random(7)
    publisher = RedisPublisher(redis_url)
    publisher.start()
    now = time.time_ns()
    bids, asks = book_levels(100.0, rng)
    publisher.publish(
        [
            BookSnapshot(
                instrument=FLOOD_INSTRUMENT,
                exchange_ts_ns=now,
                receive_ts_ns=now,
                bids=bids,
                asks=asks,
            )
        ]
    )
    published, trade_id, tick_s = 1, 0, 0.01
    books_per_tick = BOOK_UPDATES_PER_S * tick_s
    trades_per_tick = TRADES_PER_S * tick_s
    started = time.monotonic()
    ticks = 0
    while not stop.is_set():
        ticks += 1
        events: list[BookDelta | Trade] = []
        now = time.time_ns()
        for _ in range(int(books_per_tick)):
            side = rng.choice(("bids", "asks"))
            level = rng.randrange(50)
            price = 100.0 - 0.5 - level * 0.5 if side == "bids" else 100.0 + 0.5 + level * 0.5
            change = [(f"{price:.2f}", f"{rng.uniform(0.1, 5):.4f}")]
            events.append(
                BookDelta(
                    instrument=FLOOD_INSTRUMENT,
                    exchange_ts_ns=now,
                    receive_ts_ns=now,
                    bids=change if side == "bids" else [],
                    asks=change if side == "asks" else [],
                )
            )
        for _ in range(int(trades_per_tick)):
            trade_id += 1
            events.append(
                Trade(
                    instrument=FLOOD_INSTRUMENT,
                    trade_id=str(trade_id),
                    price=f"{100 + rng.uniform(-0.5, 0.5):.2f}",
                    size=f"{rng.uniform(0.01, 1):.4f}",
                    side=rng.choice(("buy", "sell")),
                    exchange_ts_ns=now,
                    receive_ts_ns=now,
                )
            )
        publisher.publish(events)
        published += len(events)
        # Paced against the clock, so a slow tick is made up rather than lowering the rate.
        await asyncio.sleep(max(0.0, started + ticks * tick_s - time.monotonic()))
    elapsed = time.monotonic() - started
    await publisher.drain(30)
    await publisher.close()
    return published, elapsed


async def busy_share(page: Page, seconds: float) -> list[float]:
    """Per window: the share of wall time the page's main thread spent running tasks."""
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Performance.enable")

    async def task_duration() -> float:
        metrics = (await cdp.send("Performance.getMetrics"))["metrics"]
        return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))

    shares = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        busy0, wall0 = await task_duration(), time.monotonic()
        await asyncio.sleep(WINDOW_S)
        busy1, wall1 = await task_duration(), time.monotonic()
        shares.append((busy1 - busy0) / (wall1 - wall0))
    return shares


async def flooded_instrument_page(
    browser: Browser, api: str, redis_url: str, flood_s: float
) -> tuple[list[float], float, int]:
    email = await sign_up(api)
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, api, email)
    await page.goto(f"{api}/instrument/{FLOOD_INSTRUMENT}")
    await page.get_by_role("heading", name="Order book").wait_for()
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(redis_url, stop))
    await asyncio.sleep(3)  # the first snapshot and the stream reach the page
    shares = await busy_share(page, flood_s)
    stop.set()
    published, elapsed = await flooding
    shown = (
        await page.locator("section", has=page.get_by_role("heading", name="Trades"))
        .locator("tbody tr")
        .count()
    )
    await context.close()
    return shares, published / elapsed, shown


async def measure(runs: int, flood_s: float) -> None:
    kb = initial_js_kb()
    print(f"initial JavaScript: {kb:.1f} KiB gzipped; target <= 300 KiB")
    with tempfile.TemporaryDirectory(prefix="finone-bench-web-") as tmp:
        data_dir = Path(tmp) / "data"
        env = platform_env(data_dir, FINONE_FEEDS="{}")
        process, ready_s = start_platform(env, Path(tmp) / "finone.log", "--demo")
        api = f"http://127.0.0.1:{env['FINONE_API_PORT']}"
        # The state file is written once every component is deployed, just after /readyz.
        while (state := read_state(data_dir)) is None:
            await asyncio.sleep(0.2)
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                times = await first_price_s(browser, api, runs)
                shares, rate, shown = await flooded_instrument_page(
                    browser, api, state.redis_url, flood_s
                )
                await browser.close()
        finally:
            stop_platform(process)
    print(f"platform ready in {ready_s:.1f} s (demo)")
    print(
        f"sign-in to first live price: {statistics.median(times):.2f} s median of {len(times)} "
        f"(min {min(times):.2f}, max {max(times):.2f})"
    )
    print(
        f"main thread busy under the flood ({BOOK_UPDATES_PER_S} book updates/s + "
        f"{TRADES_PER_S} trades/s, {rate:,.0f} events/s published): "
        f"{statistics.median(shares):.0%} median of {len(shares)} windows of {WINDOW_S:.0f} s "
        f"(max {max(shares):.0%}); target < 50%; {shown} trades on the tape"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flood-s", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(measure(args.runs, args.flood_s))


if __name__ == "__main__":
    main()
