"""What the browser tests share: the running platform, accounts made over its API, and a browser
tab that watches everything its page does (requests, sockets, console, failed API calls)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx
from playwright.async_api import ConsoleMessage, Locator, Page, Response, expect

from cluster.state import StackState
from tests.stack_runner import RunningStack

__all__ = [
    "Account",
    "Api",
    "Platform",
    "SCREENSHOTS",
    "Tab",
    "board_cell",
    "cell_of_row",
    "changes",
    "instrument_path",
    "listed_instruments",
    "live_instrument",
    "new_account",
    "one_tick_percent",
    "painted_pixels",
    "preferred",
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SIMULATED = "simulated:"
NO_VALUE = "—"

# Chromium logs every HTTP error as a console error; those are judged by their response.
_LOAD_FAILED = "Failed to load resource: the server responded with a status of"


@dataclass(frozen=True, slots=True)
class Account:
    email: str
    password: str


def new_account(prefix: str = "web") -> Account:
    return Account(f"{prefix}-{uuid.uuid4().hex[:10]}@example.com", f"pw {secrets.token_hex(8)} x")


@dataclass(frozen=True, slots=True)
class Platform:
    stack: RunningStack
    state: StackState
    origin: str
    admin: Account

    @property
    def socket_origin(self) -> str:
        return "ws" + self.origin.removeprefix("http")


class Api:
    """The platform's API as the tests' own client uses it (setting things up, checking)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def register(self, account: Account) -> None:
        response = await self.client.post(
            "/v1/auth/register", json={"email": account.email, "password": account.password}
        )
        assert response.status_code == 201, response.text

    async def token(self, account: Account) -> str:
        response = await self.client.post(
            "/v1/auth/token",
            data={
                "grant_type": "password",
                "username": account.email,
                "password": account.password,
            },
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    async def get(self, path: str, token: str, **params: str) -> httpx.Response:
        return await self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {token}"}
        )


@dataclass(frozen=True, slots=True)
class ApiErrorSeen:
    status: int
    url: str
    body: str


@dataclass
class Tab:
    """One browser context and its page, with everything the page did recorded for the checks
    every test ends with (see ``problems``)."""

    page: Page
    platform: Platform
    requests: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    api_errors: list[ApiErrorSeen] = field(default_factory=list)
    allowed_errors: list[tuple[str, int]] = field(default_factory=list)
    #: The page's latest access token, as the token endpoint gave it to the page.
    token: str | None = None
    _reading: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("websocket", lambda socket: self.sockets.append(socket.url))
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("response", self._on_response)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, str(message.location.get("url", ""))))

    def _on_response(self, response: Response) -> None:
        if response.status >= 400 or urlsplit(response.url).path == "/v1/auth/token":
            task = asyncio.ensure_future(self._read(response))
            self._reading.add(task)
            task.add_done_callback(self._reading.discard)

    async def _read(self, response: Response) -> None:
        try:
            body = await response.text()
        except Exception as error:  # the page moved on before the body was read
            body = f"<unread: {error}>"
        if response.status >= 400:
            self.api_errors.append(ApiErrorSeen(response.status, response.url, body))
        elif response.ok and '"access_token"' in body:
            self.token = str(json.loads(body)["access_token"])

    def allow(self, path_prefix: str, status: int) -> None:
        """An API error this test provokes on purpose."""
        self.allowed_errors.append((path_prefix, status))

    async def settle(self) -> None:
        if self._reading:
            await asyncio.gather(*self._reading, return_exceptions=True)

    def problems(self) -> list[str]:
        """What no page of the app may do: reach another origin, log an error, throw, or get an
        API error it did not ask for knowingly."""
        origin, sockets = self.platform.origin, self.platform.socket_origin
        found = [
            f"request to another origin: {url}" for url in self.requests if not _on(origin, url)
        ]
        found += [
            f"socket to another origin: {url}" for url in self.sockets if not _on(sockets, url)
        ]
        found += [f"uncaught error: {error}" for error in self.page_errors]
        for seen in self.api_errors:
            path = urlsplit(seen.url).path
            if not any(path.startswith(p) and seen.status == s for p, s in self.allowed_errors):
                found.append(f"unexpected {seen.status} from {seen.url}: {seen.body[:300]}")
        failed_urls = {seen.url for seen in self.api_errors}
        for text, url in self.console_errors:
            # Judged above by the response itself.
            if text.startswith(_LOAD_FAILED) and url in failed_urls:
                continue
            found.append(f"console error: {text} ({url})")
        return found

    # -- what a person does ------------------------------------------------------------------

    async def open(self, path: str) -> None:
        await self.page.goto(path)

    async def sign_in(self, account: Account) -> None:
        await self.page.get_by_label("Email", exact=True).fill(account.email)
        await self.page.get_by_label("Password", exact=True).fill(account.password)
        await self.page.get_by_role("button", name="Sign in", exact=True).click()
        await self.signed_in(account)

    async def sign_up(self, account: Account) -> None:
        """Create the account on the sign-in page, which signs in with it."""
        await self.open("/")
        await self.page.get_by_label("Email", exact=True).fill(account.email)
        await self.page.get_by_label("Password", exact=True).fill(account.password)
        await self.page.get_by_role("button", name="Create account", exact=True).click()
        await self.signed_in(account)
        await expect(self.heading("Markets")).to_be_visible()

    async def signed_in(self, account: Account) -> None:
        """Signed in, on whatever page sign-in led to (the one signed out of, else Markets)."""
        await expect(self.page.get_by_role("banner")).to_contain_text(account.email, timeout=30_000)

    async def sign_out(self) -> None:
        await self.page.get_by_role("banner").get_by_role("button", name="Sign out").click()
        await expect(self.page.get_by_role("button", name="Sign in", exact=True)).to_be_visible()

    def heading(self, name: str) -> Locator:
        return self.page.get_by_role("heading", name=name, exact=True, level=1)

    def nav(self) -> Locator:
        return self.page.get_by_role("navigation", name="Main")

    async def go(self, page_name: str) -> None:
        """Follow a link of the main navigation (the app routes it without a reload)."""
        await self.nav().get_by_role("link", name=page_name, exact=True).click()
        await expect(self.heading(page_name)).to_be_visible()

    async def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def _on(origin: str, url: str) -> bool:
    return url == origin or url.startswith(f"{origin}/") or url.startswith(("data:", "blob:"))


def instrument_path(instrument: str) -> str:
    return f"/instrument/{quote(instrument, safe='')}"


def preferred(instruments: list[str]) -> list[str]:
    """The simulated market's instruments first (the demo's richest data), else as listed."""
    return sorted(instruments, key=lambda instrument: not instrument.startswith(SIMULATED))


_CELL_OF_ROW = """(row, column) => {
  const heads = [...row.closest("table").tHead.rows[0].cells]
    .map((cell) => cell.textContent.trim());
  const index = heads.indexOf(column);
  if (index < 0) throw new Error(`no column ${column} in ${heads.join(", ")}`);
  return row.cells[index].textContent.trim();
}"""


async def cell_of_row(row: Locator, column: str) -> str:
    """The text of a table row's cell under the column headed ``column``."""
    return str(await row.evaluate(_CELL_OF_ROW, column))


def board_row(page: Page, instrument: str) -> Locator:
    return page.locator(f'table.board tbody tr:has(a[href="{instrument_path(instrument)}"])')


async def board_cell(page: Page, instrument: str, column: str) -> str:
    return await cell_of_row(board_row(page, instrument), column)


async def listed_instruments(page: Page) -> list[str]:
    """The instruments a market board on the page lists, in its order."""
    links = page.locator("table.board tbody th a")
    await expect(links.first).to_be_visible(timeout=30_000)
    hrefs = await links.evaluate_all("(links) => links.map((link) => link.getAttribute('href'))")
    return [unquote(str(href).removeprefix("/instrument/")) for href in hrefs]


async def live_instrument(page: Page, timeout_s: float = 30) -> str:
    """A listed instrument that shows a live price, preferring the simulated market's."""
    deadline = time.monotonic() + timeout_s
    while True:
        listed = await listed_instruments(page)
        priced = [i for i in listed if await board_cell(page, i, "Last") not in ("", NO_VALUE)]
        if priced:
            return preferred(priced)[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no listed instrument shows a price: {listed}")
        await asyncio.sleep(0.25)


async def changes(
    read: Callable[[], Awaitable[str]], timeout_s: float, what: str, first: str | None = None
) -> tuple[str, str]:
    """Reads until the value differs from ``first`` (by default the first reading); returns
    both."""
    if first is None:
        first = await read()
    deadline = time.monotonic() + timeout_s
    while (now := await read()) == first:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} stayed {first!r} for {timeout_s} s")
        await asyncio.sleep(0.2)
    return first, now


def one_tick_percent(price: str) -> str:
    """A move of one price step (the last digit the price is quoted to), in percent: rounded up,
    so a move of a step or two fires it."""
    _, _, decimals = price.partition(".")
    tick = Decimal(1).scaleb(-len(decimals))
    percent = (tick / Decimal(price) * 100).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)
    return format(max(percent, Decimal("0.000001")), "f")


_PAINTED = """(chart, colors) => {
  const counts = colors.map(() => 0);
  for (const canvas of chart.querySelectorAll("canvas")) {
    if (!canvas.width || !canvas.height) continue;
    const context = canvas.getContext("2d");
    if (!context) continue;
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] < 160) continue;
      colors.forEach(([r, g, b], k) => {
        const near = Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40
          && Math.abs(data[i + 2] - b) < 40;
        if (near) counts[k] += 1;
      });
    }
  }
  return counts;
}"""

_HEX = re.compile(r"^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$", re.IGNORECASE)


async def painted_pixels(chart: Locator, css_colors: list[str]) -> list[int]:
    """Pixels of the chart's canvases painted in each of the page's CSS colour variables
    (``--up``...), near enough for anti-aliasing."""
    rgb = []
    for name in css_colors:
        value = await chart.evaluate(
            "(element, name) => getComputedStyle(document.documentElement)"
            ".getPropertyValue(name).trim()",
            name,
        )
        match = _HEX.match(str(value))
        assert match, f"{name} is {value!r}, not #rrggbb"
        rgb.append([int(part, 16) for part in match.groups()])
    return [int(count) for count in await chart.evaluate(_PAINTED, rgb)]
