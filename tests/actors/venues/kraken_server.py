"""A local Kraken WebSocket API v2 server for tests: its protocol, real checksums, scripted faults.

It keeps a full order book per pair and serves each client the view it subscribed to, the way
Kraken does: a snapshot of the top ``depth`` levels on subscribe, then updates carrying only the
levels that changed within that view (a level merely pushed out of the view gets no removal: the
client truncates), each with the CRC32 checksum of the client's top 10 levels. Numbers go out as
bare JSON numbers written to the pair's precision (``0.10000000``), as Kraken writes them.

The checksum here is computed independently of the adapter's, from ``Decimal`` values quantized
to the pair's precision, so the two implementations check each other.

Faults: ``update_book(..., bad_checksum=True)``, ``drop()`` (abrupt disconnect), ``go_silent()``
(open connections get nothing more, not even heartbeats or replies; new ones are served),
``send_raw`` (malformed or unknown frames), and subscriptions to pairs it does not list are
refused as Kraken refuses them.

    async with KrakenServer() as server:
        server.set_book("BTC/USD", bids=[("45283.5", "0.1")], asks=[("45285.2", "0.001")])
        ... connect to server.url ...
        await server.wait_until(lambda: server.is_subscribed("book", "BTC/USD"))
        await server.update_book("BTC/USD", bids=[("45283.6", "2")])
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["KrakenServer", "PairSpec", "kraken_checksum"]

DEPTHS = (10, 25, 100, 500, 1000)
CHANNELS = ("book", "trade", "ticker")

Levels = Iterable[tuple[str, str]]
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class PairSpec:
    """A pair the server lists, with Kraken's precision for it."""

    price_precision: int
    qty_precision: int


DEFAULT_PAIRS = {"BTC/USD": PairSpec(1, 8), "ETH/USD": PairSpec(2, 8)}


def _quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def _token(value: Decimal, places: int) -> str:
    return format(value.quantize(_quantum(places)), "f").replace(".", "").lstrip("0")


def kraken_checksum(
    asks: list[tuple[Decimal, Decimal]], bids: list[tuple[Decimal, Decimal]], spec: PairSpec
) -> int:
    """Kraken's book checksum from values: top 10 asks ascending, then top 10 bids descending."""
    text = "".join(
        _token(price, spec.price_precision) + _token(qty, spec.qty_precision)
        for price, qty in [*asks[:10], *bids[:10]]
    )
    return zlib.crc32(text.encode())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Book:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)

    def top_bids(self, depth: int) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.bids.items(), reverse=True)[:depth]

    def top_asks(self, depth: int) -> list[tuple[Decimal, Decimal]]:
        return sorted(self.asks.items())[:depth]


@dataclass
class _Client:
    ws: ServerConnection
    # (channel, pair) -> the subscription's parameters.
    subscriptions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # pair -> the top levels this client was last told, to send it only what changed.
    views: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = field(
        default_factory=dict
    )
    # A hung venue: nothing more is sent to this client or answered.
    silent: bool = False


class KrakenServer:
    def __init__(
        self,
        pairs: dict[str, PairSpec] | None = None,
        *,
        heartbeat_interval_s: float | None = 1.0,
    ) -> None:
        self.pairs = dict(DEFAULT_PAIRS if pairs is None else pairs)
        self.heartbeat_interval_s = heartbeat_interval_s
        # Every request any client sent, decoded, in order.
        self.received: list[dict[str, Any]] = []
        self.connections_opened = 0
        self._books = {pair: _Book() for pair in self.pairs}
        self._trades: dict[str, list[dict[str, Any]]] = {pair: [] for pair in self.pairs}
        self._trade_ids = itertools.count(1)
        self._connection_ids = itertools.count(1)
        self._clients: list[_Client] = []
        self._server: Server | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> KrakenServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v2"

    # -- scripting the market ----------------------------------------------------------------

    def set_book(self, pair: str, bids: Levels = (), asks: Levels = ()) -> None:
        """Replace the pair's book without telling anyone (the next subscriber's snapshot)."""
        self._books[pair] = _Book(
            {Decimal(p): Decimal(q) for p, q in bids}, {Decimal(p): Decimal(q) for p, q in asks}
        )

    def top(
        self, pair: str, depth: int = 10
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The pair's top bids and asks as Kraken writes them, to compare with a client's book."""
        book, spec = self._books[pair], self.pairs[pair]
        return (
            [self._level_text(p, q, spec) for p, q in book.top_bids(depth)],
            [self._level_text(p, q, spec) for p, q in book.top_asks(depth)],
        )

    async def update_book(
        self, pair: str, bids: Levels = (), asks: Levels = (), *, bad_checksum: bool = False
    ) -> None:
        """Change levels (quantity 0 removes one) and send each book subscriber what it sees
        change; ``bad_checksum`` sends a checksum that does not match."""
        book = self._books[pair]
        for side, levels in ((book.bids, bids), (book.asks, asks)):
            for price, qty in levels:
                if Decimal(qty) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = Decimal(qty)
        async with self._lock:
            for client in list(self._clients):
                params = client.subscriptions.get(("book", pair))
                if params is not None:
                    await self._send_book_update(client, pair, params["depth"], bad_checksum)
                ticker = client.subscriptions.get(("ticker", pair))
                if ticker is not None and ticker["event_trigger"] == "bbo":
                    await self._send(client, self._ticker_message(pair, "update"))

    async def send_trade(
        self, pair: str, side: str, price: str, qty: str, *, ord_type: str = "market"
    ) -> int:
        """A trade to every subscriber of the pair's trades; returns its trade id."""
        spec = self.pairs[pair]
        trade_id = next(self._trade_ids)
        entry = {
            "symbol": pair,
            "side": side,
            "price": self._number(Decimal(price), spec.price_precision),
            "qty": self._number(Decimal(qty), spec.qty_precision),
            "ord_type": ord_type,
            "trade_id": trade_id,
            "timestamp": _now(),
        }
        self._trades[pair] = [*self._trades[pair][-49:], entry]
        message = {"channel": "trade", "type": "update", "data": [entry]}
        async with self._lock:
            for client in list(self._clients):
                if ("trade", pair) in client.subscriptions:
                    await self._send(client, message)
        return trade_id

    async def send_raw(self, text: str | bytes) -> None:
        """A frame exactly as given, to every client: malformed JSON, unknown messages, ..."""
        async with self._lock:
            for client in list(self._clients):
                await self._send(client, text)

    def go_silent(self) -> None:
        """Stop sending anything on the connections open now, as a hung venue would."""
        for client in self._clients:
            client.silent = True

    async def drop(self) -> None:
        """Cut every connection without a closing handshake, like a network failure."""
        for client in list(self._clients):
            client.ws.transport.abort()

    # -- observing clients -------------------------------------------------------------------

    def is_subscribed(self, channel: str, pair: str) -> bool:
        return any((channel, pair) in client.subscriptions for client in self._clients)

    def requests(
        self, method: str, channel: str | None = None, pair: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests received with ``method``, for ``channel`` and naming ``pair`` if given."""
        found = []
        for request in self.received:
            params = request.get("params") or {}
            if request.get("method") != method:
                continue
            if channel is not None and params.get("channel") != channel:
                continue
            if pair is not None and pair not in (params.get("symbol") or []):
                continue
            found.append(request)
        return found

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``condition()`` holds after some request or connection change."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(condition)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- protocol ----------------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        self._clients.append(client)
        self.connections_opened += 1
        heartbeat = asyncio.create_task(self._heartbeat(client))
        try:
            await self._send(client, self._status_message())
            await self._notify()
            async for frame in ws:
                await self._on_request(client, frame)
        except ConnectionClosed:
            pass
        finally:
            heartbeat.cancel()
            self._clients.remove(client)
            await self._notify()

    async def _heartbeat(self, client: _Client) -> None:
        if self.heartbeat_interval_s is None:
            return
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            # Kraken sends heartbeats only to a connection subscribed to something.
            if client.subscriptions:
                await self._send(client, {"channel": "heartbeat"})

    async def _on_request(self, client: _Client, frame: str | bytes) -> None:
        time_in = _now()
        try:
            request = json.loads(frame)
        except ValueError:
            await self._reply(client, {}, time_in, error="Malformed request")
            return
        if not isinstance(request, dict):
            await self._reply(client, {}, time_in, error="Malformed request")
            return
        self.received.append(request)
        await self._notify()
        method = request.get("method")
        if client.silent:
            return
        async with self._lock:
            if method == "ping":
                await self._reply(client, request, time_in, method="pong")
            elif method == "subscribe":
                await self._subscribe(client, request, time_in)
            elif method == "unsubscribe":
                await self._unsubscribe(client, request, time_in)
            else:
                await self._reply(client, request, time_in, error="Method not found")

    async def _subscribe(self, client: _Client, request: dict[str, Any], time_in: str) -> None:
        params = request.get("params") or {}
        channel = params.get("channel")
        pairs = params.get("symbol") or []
        if channel not in CHANNELS:
            await self._reply(client, request, time_in, error="Channel not supported")
            return
        depth = params.get("depth", 10)
        if channel == "book" and depth not in DEPTHS:
            await self._reply(client, request, time_in, error="Subscription depth not supported")
            return
        snapshot = params.get("snapshot", True)
        for pair in pairs:
            if pair not in self.pairs:
                error = f"Currency pair not supported {pair}"
                await self._reply(client, request, time_in, error=error, symbol=pair)
                continue
            if (channel, pair) in client.subscriptions:
                await self._reply(client, request, time_in, error="Already subscribed", symbol=pair)
                continue
            result: dict[str, Any] = {"channel": channel, "snapshot": snapshot, "symbol": pair}
            if channel == "book":
                result["depth"] = depth
            if channel == "ticker":
                result["event_trigger"] = params.get("event_trigger", "trades")
            client.subscriptions[(channel, pair)] = result
            await self._reply(client, request, time_in, result=result)
            if channel == "book":
                await self._send_book_snapshot(client, pair, depth)
            elif snapshot and channel == "ticker":
                await self._send(client, self._ticker_message(pair, "snapshot"))
            elif snapshot and channel == "trade":
                await self._send(
                    client, {"channel": "trade", "type": "snapshot", "data": self._trades[pair]}
                )

    async def _unsubscribe(self, client: _Client, request: dict[str, Any], time_in: str) -> None:
        params = request.get("params") or {}
        channel = str(params.get("channel"))
        for pair in params.get("symbol") or []:
            result = client.subscriptions.pop((channel, pair), None)
            if result is None:
                await self._reply(
                    client, request, time_in, error="Subscription Not Found", symbol=pair
                )
                continue
            if channel == "book":
                client.views.pop(pair, None)
            await self._reply(client, request, time_in, result=result)

    # -- messages ----------------------------------------------------------------------------

    async def _send_book_snapshot(self, client: _Client, pair: str, depth: int) -> None:
        book = self._books[pair]
        bids, asks = dict(book.top_bids(depth)), dict(book.top_asks(depth))
        client.views[pair] = (bids, asks)
        message = self._book_message(
            pair, "snapshot", list(bids.items()), list(asks.items()), (bids, asks)
        )
        await self._send(client, message)

    async def _send_book_update(
        self, client: _Client, pair: str, depth: int, bad_checksum: bool
    ) -> None:
        book = self._books[pair]
        old_bids, old_asks = client.views[pair]
        bids, asks = dict(book.top_bids(depth)), dict(book.top_asks(depth))
        client.views[pair] = (bids, asks)
        bid_changes = self._changes(old_bids, bids, book.bids)
        ask_changes = self._changes(old_asks, asks, book.asks)
        if bid_changes or ask_changes:
            message = self._book_message(pair, "update", bid_changes, ask_changes, (bids, asks))
            if bad_checksum:
                message["data"][0]["checksum"] ^= 0xFFFFFFFF
            await self._send(client, message)

    @staticmethod
    def _changes(
        old: dict[Decimal, Decimal], new: dict[Decimal, Decimal], full: dict[Decimal, Decimal]
    ) -> list[tuple[Decimal, Decimal]]:
        # A level that left the book is removed explicitly; one pushed out of view is not.
        removed = [(price, Decimal(0)) for price in old if price not in new and price not in full]
        changed = [(price, qty) for price, qty in new.items() if old.get(price) != qty]
        return removed + changed

    def _book_message(
        self,
        pair: str,
        kind: str,
        bids: list[tuple[Decimal, Decimal]],
        asks: list[tuple[Decimal, Decimal]],
        view: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]],
    ) -> dict[str, Any]:
        """A book message carrying ``bids``/``asks``, checksummed over the client's ``view``."""
        spec = self.pairs[pair]
        bid_view, ask_view = view
        checksum = kraken_checksum(
            sorted(ask_view.items()), sorted(bid_view.items(), reverse=True), spec
        )
        return {
            "channel": "book",
            "type": kind,
            "data": [
                {
                    "symbol": pair,
                    "bids": [self._level(p, q, spec) for p, q in bids],
                    "asks": [self._level(p, q, spec) for p, q in asks],
                    "checksum": checksum,
                    "timestamp": _now(),
                }
            ],
        }

    def _ticker_message(self, pair: str, kind: str) -> dict[str, Any]:
        book, spec = self._books[pair], self.pairs[pair]
        bid = book.top_bids(1)
        ask = book.top_asks(1)
        entry: dict[str, Any] = {"symbol": pair}
        if bid:
            entry["bid"] = self._number(bid[0][0], spec.price_precision)
            entry["bid_qty"] = self._number(bid[0][1], spec.qty_precision)
        if ask:
            entry["ask"] = self._number(ask[0][0], spec.price_precision)
            entry["ask_qty"] = self._number(ask[0][1], spec.qty_precision)
        entry.update(last=entry.get("bid", 0), volume=msgspec.Raw(b"0.0"), change=0, change_pct=0)
        entry["timestamp"] = _now()
        return {"channel": "ticker", "type": kind, "data": [entry]}

    def _status_message(self) -> dict[str, Any]:
        data = {
            "api_version": "v2",
            "connection_id": next(self._connection_ids),
            "system": "online",
            "version": "2.0.10",
        }
        return {"channel": "status", "type": "update", "data": [data]}

    async def _reply(
        self,
        client: _Client,
        request: dict[str, Any],
        time_in: str,
        *,
        method: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        symbol: str | None = None,
    ) -> None:
        reply: dict[str, Any] = {"method": method or request.get("method")}
        if error is None:
            reply["result"] = result if result is not None else {}
            reply["success"] = True
        else:
            reply.update(error=error, success=False)
            if symbol is not None:
                reply["symbol"] = symbol
        reply.update(time_in=time_in, time_out=_now())
        if "req_id" in request:
            reply["req_id"] = request["req_id"]
        await self._send(client, reply)

    def _level(self, price: Decimal, qty: Decimal, spec: PairSpec) -> dict[str, msgspec.Raw]:
        return {
            "price": self._number(price, spec.price_precision),
            "qty": self._number(qty, spec.qty_precision),
        }

    def _level_text(self, price: Decimal, qty: Decimal, spec: PairSpec) -> tuple[str, str]:
        return (
            format(price.quantize(_quantum(spec.price_precision)), "f"),
            format(qty.quantize(_quantum(spec.qty_precision)), "f"),
        )

    @staticmethod
    def _number(value: Decimal, places: int) -> msgspec.Raw:
        """A bare JSON number written to ``places`` decimals, trailing zeros kept."""
        return msgspec.Raw(format(value.quantize(_quantum(places)), "f").encode())

    async def _send(self, client: _Client, message: dict[str, Any] | str | bytes) -> None:
        if client.silent:
            return
        text = message if isinstance(message, (str, bytes)) else _encoder.encode(message).decode()
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(text)
