"""A local OKX v5 public WebSocket server generating a market: for the demo, benchmarks and tests.

``OkxMarket`` is the exchange side without IO: order books per instrument with their own
sequence ids, and the frames OKX would send about them (snapshots and updates with real
checksums, trades, tickers, errors, the replies to requests), stamped by its ``clock``.
``OkxServer`` serves a market over WebSocket on 127.0.0.1 the way
``wss://ws.okx.com:8443/ws/v5/public`` does: ``subscribe``/``unsubscribe`` requests acknowledged
per channel, ``60018`` errors for instruments it does not list, a books snapshot on every
subscribe, the text ``"ping"`` answered with ``"pong"``, and scriptable faults (a wrong
checksum, a lost update, a dropped connection, silence, raw frames, error replies).
Streaming on its own, it sends what the market's ``stream_frames`` makes at each step: here
random changes around a price that never moves (tests, benchmarks); ``actors.simulated.market``
makes a moving market of it (the demo).

The checksum here is written independently of the adapter's, from OKX's description, so each
checks the other.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = [
    "OkxMarket",
    "OkxServer",
    "ExchangeBook",
    "decimal_text",
    "okx_book_checksum",
    "no_such_instrument",
    "FIRST_TRADE_ID",
]

CHANNELS = frozenset({"trades", "tickers", "books"})
# Prices move in tenths, as BTC-USDT's tick size 0.1.
PRICE_DECIMALS = 1
SIZE_DECIMALS = 4
FIRST_TRADE_ID = 338_476_301


def okx_book_checksum(bids: list[list[str]], asks: list[list[str]]) -> int:
    """CRC32 (signed) of ``bid:size:ask:size:...`` over the best 25 levels of each side."""
    fields: list[str] = []
    for index in range(25):
        if index < len(bids):
            fields += bids[index][:2]
        if index < len(asks):
            fields += asks[index][:2]
    value = zlib.crc32(":".join(fields).encode("ascii"))
    return value - 2**32 if value >= 2**31 else value


def no_such_instrument(channel: str, inst_id: str) -> str:
    return json.dumps(
        {
            "event": "error",
            "code": "60018",
            "msg": f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist",
            "connId": "a4d3ae55",
        }
    )


def decimal_text(units: int, decimals: int) -> str:
    """``units`` of ``10**-decimals`` as OKX writes the number: "30244", not "30244.0", and
    "0.5", not "0.50" (a checksum over reformatted numbers would not match)."""
    whole, fraction = divmod(units, 10**decimals)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{fraction:0{decimals}d}".rstrip("0")


@dataclass
class ExchangeBook:
    """One instrument's book as the exchange keeps it, levels spelled as it sends them."""

    # Keyed by the exact price, so any spelling a test sends lands on the right level.
    bids: dict[Decimal, tuple[str, str]] = field(default_factory=dict)
    asks: dict[Decimal, tuple[str, str]] = field(default_factory=dict)
    seq: int = 0
    # In ticks of ``10**-decimals``.
    mid: int = 0
    decimals: int = PRICE_DECIMALS
    # The latest trade's price and size, which tickers carry as "last".
    last: tuple[str, str] | None = None

    def price(self, ticks: int) -> str:
        return decimal_text(ticks, self.decimals)

    def side(self, side: str) -> dict[Decimal, tuple[str, str]]:
        return self.bids if side == "bids" else self.asks

    def levels(self, side: str) -> list[list[str]]:
        levels = self.side(side)
        return [[*levels[price], "0", "1"] for price in sorted(levels, reverse=side == "bids")]

    def set(self, side: str, price: str, size: str) -> None:
        if Decimal(size) == 0:
            self.side(side).pop(Decimal(price), None)
        else:
            self.side(side)[Decimal(price)] = (price, size)


class OkxMarket:
    """Books and frames of a few OKX instruments; deterministic for a given ``seed``."""

    def __init__(
        self,
        instruments: Iterable[str] = ("BTC-USDT",),
        *,
        seed: int = 1,
        depth: int = 40,
        with_seq: bool = True,
        first_trade_id: int = FIRST_TRADE_ID,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.rng = random.Random(seed)
        self.depth = depth
        # Nanoseconds since the epoch, stamped on every frame: the wall clock when served, a
        # virtual one when a capture of a long stretch is written in a moment.
        self.clock = clock
        self.with_seq = with_seq
        self.books: dict[str, ExchangeBook] = {}
        self.first_trade_id = first_trade_id
        self._trade_ids: Counter[str] = Counter()
        for number, inst_id in enumerate(instruments):
            mid = (30_000 + 1_000 * number) * 10**PRICE_DECIMALS
            book = ExchangeBook(seq=self.rng.randint(1_000, 100_000), mid=mid)
            for level in range(depth):
                book.set("bids", book.price(mid - 1 - 2 * level), self._size())
                book.set("asks", book.price(mid + 1 + 2 * level), self._size())
            self.books[inst_id] = book

    def _size(self) -> str:
        return decimal_text(self.rng.randint(1, 50_000), SIZE_DECIMALS)

    def _now_ms(self) -> str:
        return str(self.clock() // 1_000_000)

    # -- state ----------------------------------------------------------------------------

    def bids(self, inst_id: str) -> list[list[str]]:
        return self.books[inst_id].levels("bids")

    def asks(self, inst_id: str) -> list[list[str]]:
        return self.books[inst_id].levels("asks")

    def best_bid(self, inst_id: str) -> str:
        return self.bids(inst_id)[0][0]

    def best_ask(self, inst_id: str) -> str:
        return self.asks(inst_id)[0][0]

    def random_change(self, inst_id: str) -> tuple[list[list[str]], list[list[str]]]:
        """A few levels near the top that change, appear or go, never crossing the book."""
        book = self.books[inst_id]
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        for _ in range(self.rng.randint(1, 4)):
            side = self.rng.choice(("bids", "asks"))
            offset = 1 + self.rng.randrange(2 * self.depth)
            price = book.price(book.mid - offset if side == "bids" else book.mid + offset)
            levels = book.side(side)
            deleting = (
                Decimal(price) in levels
                and len(levels) > self.depth // 2
                and self.rng.random() < 0.3
            )
            change = [price, "0" if deleting else self._size()]
            (bids if side == "bids" else asks).append(change)
        return bids, asks

    # -- frames ---------------------------------------------------------------------------

    def _books_frame(
        self,
        inst_id: str,
        action: str,
        bids: list[list[str]],
        asks: list[list[str]],
        checksum: int,
        prev_seq: int,
        seq: int,
    ) -> str:
        data: dict[str, object] = {
            "asks": [level if len(level) == 4 else [*level, "0", "1"] for level in asks],
            "bids": [level if len(level) == 4 else [*level, "0", "1"] for level in bids],
            "ts": self._now_ms(),
            "checksum": checksum,
        }
        if self.with_seq:
            data["prevSeqId"] = prev_seq
            data["seqId"] = seq
        # Compact, as OKX writes it.
        return json.dumps(
            {"arg": {"channel": "books", "instId": inst_id}, "action": action, "data": [data]},
            separators=(",", ":"),
        )

    def snapshot_frame(self, inst_id: str) -> str:
        bids, asks = self.bids(inst_id), self.asks(inst_id)
        book = self.books[inst_id]
        checksum = okx_book_checksum(bids, asks)
        return self._books_frame(inst_id, "snapshot", bids, asks, checksum, -1, book.seq)

    def apply(
        self, inst_id: str, bids: list[list[str]], asks: list[list[str]], *, next_seq: int | None
    ) -> tuple[int, int, int]:
        """Change the book; (checksum, prevSeqId, seqId) of the update that says so."""
        book = self.books[inst_id]
        for price, size, *_ in bids:
            book.set("bids", price, size)
        for price, size, *_ in asks:
            book.set("asks", price, size)
        prev_seq = book.seq
        book.seq = prev_seq + self.rng.randint(1, 20) if next_seq is None else next_seq
        return okx_book_checksum(self.bids(inst_id), self.asks(inst_id)), prev_seq, book.seq

    def update_frame(
        self,
        inst_id: str,
        bids: list[list[str]] | None = None,
        asks: list[list[str]] | None = None,
        *,
        bad_checksum: bool = False,
        next_seq: int | None = None,
    ) -> str:
        """An update applying ``bids``/``asks`` (a random change when both are None)."""
        if bids is None and asks is None:
            bids, asks = self.random_change(inst_id)
        bids, asks = bids or [], asks or []
        checksum, prev_seq, seq = self.apply(inst_id, bids, asks, next_seq=next_seq)
        if bad_checksum:
            checksum ^= 1
        return self._books_frame(inst_id, "update", bids, asks, checksum, prev_seq, seq)

    def lose_update(self, inst_id: str) -> None:
        """An update the exchange made but nobody received (a sequence gap downstream)."""
        bids, asks = self.random_change(inst_id)
        self.apply(inst_id, bids, asks, next_seq=None)

    def keepalive_frame(self, inst_id: str) -> str:
        """What OKX sends on a quiet book: no levels, ``seqId == prevSeqId``."""
        book = self.books[inst_id]
        checksum = okx_book_checksum(self.bids(inst_id), self.asks(inst_id))
        return self._books_frame(inst_id, "update", [], [], checksum, book.seq, book.seq)

    def trade_frame(
        self, inst_id: str, *, side: str = "buy", size: str = "0.01", count: int = 1
    ) -> str:
        """``count`` trades of ``size`` at the touch: a buy at the best ask, a sell at the bid."""
        price = self.best_ask(inst_id) if side == "buy" else self.best_bid(inst_id)
        self.books[inst_id].last = (price, size)
        trades = []
        for _ in range(count):
            trades.append(
                {
                    "instId": inst_id,
                    "tradeId": str(self.first_trade_id + self._trade_ids[inst_id]),
                    "px": price,
                    "sz": size,
                    "side": side,
                    "ts": self._now_ms(),
                }
            )
            self._trade_ids[inst_id] += 1
        return json.dumps({"arg": {"channel": "trades", "instId": inst_id}, "data": trades})

    def ticker_frame(self, inst_id: str) -> str:
        (bid_px, bid_sz, *_), (ask_px, ask_sz, *_) = self.bids(inst_id)[0], self.asks(inst_id)[0]
        last_px, last_sz = self.books[inst_id].last or (bid_px, "0.01")
        ticker = {
            "instType": "SPOT",
            "instId": inst_id,
            "last": last_px,
            "lastSz": last_sz,
            "askPx": ask_px,
            "askSz": ask_sz,
            "bidPx": bid_px,
            "bidSz": bid_sz,
            "open24h": bid_px,
            "high24h": ask_px,
            "low24h": bid_px,
            "sodUtc0": bid_px,
            "sodUtc8": bid_px,
            "volCcy24h": "1000",
            "vol24h": "10",
            "ts": self._now_ms(),
        }
        return json.dumps({"arg": {"channel": "tickers", "instId": inst_id}, "data": [ticker]})

    # -- requests -------------------------------------------------------------------------

    def replies(self, text: str, subscriptions: set[tuple[str, str]]) -> list[str]:
        """What OKX answers a client's request ``text``, in order; ``subscriptions`` (channel,
        instId) are that client's, changed as the request asks."""
        if text == "ping":
            return ["pong"]
        try:
            request = json.loads(text)
            op, args = request["op"], list(request["args"])
        except (ValueError, KeyError, TypeError):
            op, args = None, []
        if op not in ("subscribe", "unsubscribe"):
            invalid = {"event": "error", "code": "60012", "msg": f"Invalid request: {text}"}
            return [json.dumps(invalid)]
        replies: list[str] = []
        for arg in args:
            if not isinstance(arg, dict):
                continue
            channel, inst_id = str(arg.get("channel")), str(arg.get("instId"))
            if channel not in CHANNELS or inst_id not in self.books:
                replies.append(no_such_instrument(channel, inst_id))
                continue
            replies.append(
                json.dumps({"event": op, "arg": {"channel": channel, "instId": inst_id}})
            )
            if op == "unsubscribe":
                subscriptions.discard((channel, inst_id))
                continue
            subscriptions.add((channel, inst_id))
            if channel == "books":
                replies.append(self.snapshot_frame(inst_id))
            elif channel == "tickers":
                replies.append(self.ticker_frame(inst_id))
        return replies

    # -- streaming ------------------------------------------------------------------------

    def stream_frames(self, step: int) -> list[tuple[str, str, str]]:
        """(channel, instId, frame) of what the exchange sends at ``step`` of a stream: every
        book changes a little, a trade every third step and a ticker every tenth."""
        frames: list[tuple[str, str, str]] = []
        for inst_id in self.books:
            frames.append(("books", inst_id, self.update_frame(inst_id)))
            if step % 3 == 0:
                side = self.rng.choice(("buy", "sell"))
                frames.append(("trades", inst_id, self.trade_frame(inst_id, side=side)))
            if step % 10 == 0:
                frames.append(("tickers", inst_id, self.ticker_frame(inst_id)))
        return frames


class _Client:
    """One accepted connection: its subscriptions and an ordered outbox."""

    def __init__(self, number: int, ws: ServerConnection) -> None:
        self.number = number
        self.ws = ws
        self.subscriptions: set[tuple[str, str]] = set()
        self.silent = False
        self.outbox: asyncio.Queue[str] = asyncio.Queue()

    def send(self, text: str) -> None:
        # Queued, not awaited: frames leave in exactly the order the market produced them.
        if not self.silent:
            self.outbox.put_nowait(text)

    async def write(self) -> None:
        while True:
            text = await self.outbox.get()
            if not self.silent:
                await self.ws.send(text)


class OkxServer:
    """The market above, served on ``ws://127.0.0.1:<port>``; use ``async with``."""

    def __init__(
        self,
        market: OkxMarket | None = None,
        *,
        auto_interval_s: float | None = None,
        port: int = 0,
    ) -> None:
        self.market = market or OkxMarket()
        # When set, the market's ``stream_frames`` go out this often, so feeds see a
        # live-looking stream without scripting it.
        self.auto_interval_s = auto_interval_s
        # 0: any free port.
        self.port = port
        self.received: list[tuple[int, str]] = []
        self.connections = 0
        self._clients: dict[int, _Client] = {}
        self._server: Server | None = None
        self._auto: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> OkxServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen (and stream, with ``auto_interval_s``); ``url`` then says where."""
        self._server = await serve(self._serve, "127.0.0.1", self.port)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws/v5/public"
        if self.auto_interval_s is not None:
            self._auto = asyncio.create_task(self._stream(self.auto_interval_s))

    async def close(self) -> None:
        """Stop streaming, close every connection and stop listening."""
        if self._auto is not None:
            self._auto.cancel()
            await asyncio.gather(self._auto, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- observation ----------------------------------------------------------------------

    @property
    def clients(self) -> int:
        """Connections open now."""
        return len(self._clients)

    def requests(self, op: str, channel: str | None = None, inst_id: str | None = None) -> int:
        """How many received requests ``op`` named (``channel``, ``inst_id``)."""
        count = 0
        for _, text in self.received:
            try:
                request = json.loads(text)
            except ValueError:
                continue
            if not isinstance(request, dict) or request.get("op") != op:
                continue
            count += sum(
                1
                for arg in request.get("args", [])
                if (channel is None or arg.get("channel") == channel)
                and (inst_id is None or arg.get("instId") == inst_id)
            )
        return count

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.005)

    # -- pushes and faults ----------------------------------------------------------------

    def publish(self, channel: str, inst_id: str, text: str) -> None:
        """``text`` to every connection subscribed to (``channel``, ``inst_id``)."""
        for client in list(self._clients.values()):
            if (channel, inst_id) in client.subscriptions:
                client.send(text)

    def broadcast(self, text: str) -> None:
        """``text`` to every connection, subscribed or not (malformed and unknown frames)."""
        for client in list(self._clients.values()):
            client.send(text)

    def push_book_update(
        self,
        inst_id: str,
        bids: list[list[str]] | None = None,
        asks: list[list[str]] | None = None,
        *,
        bad_checksum: bool = False,
    ) -> None:
        """``OkxMarket.update_frame`` to the instrument's ``books`` subscribers."""
        frame = self.market.update_frame(inst_id, bids, asks, bad_checksum=bad_checksum)
        self.publish("books", inst_id, frame)

    def push_trade(self, inst_id: str, *, side: str = "buy", size: str = "0.01") -> None:
        self.publish("trades", inst_id, self.market.trade_frame(inst_id, side=side, size=size))

    def push_ticker(self, inst_id: str) -> None:
        self.publish("tickers", inst_id, self.market.ticker_frame(inst_id))

    def lose_book_update(self, inst_id: str) -> None:
        self.market.lose_update(inst_id)

    def drop(self) -> None:
        """Cut every connection without a close handshake, as a network failure would."""
        for client in list(self._clients.values()):
            client.ws.transport.abort()

    def go_silent(self) -> None:
        """Current connections stay open but get nothing more, not even pongs."""
        for client in self._clients.values():
            client.silent = True

    # -- protocol -------------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        self.connections += 1
        client = _Client(self.connections, ws)
        self._clients[client.number] = client
        writer = asyncio.create_task(client.write())
        try:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self.received.append((client.number, text))
                self._on_request(client, text)
        except ConnectionClosed:
            pass
        finally:
            del self._clients[client.number]
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def _on_request(self, client: _Client, text: str) -> None:
        for reply in self.market.replies(text, client.subscriptions):
            client.send(reply)

    async def _stream(self, interval_s: float) -> None:
        step = 0
        while True:
            await asyncio.sleep(interval_s)
            step += 1
            for channel, inst_id, text in self.market.stream_frames(step):
                self.publish(channel, inst_id, text)
