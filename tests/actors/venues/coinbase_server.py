"""A local Coinbase Advanced Trade market-data WebSocket server, with faults to script.

It speaks the protocol the adapter expects from wss://advanced-trade-ws.coinbase.com: one channel
per subscribe message, connections closed when nothing is subscribed within 5 s, a
``subscriptions`` acknowledgement, then a snapshot per product (level2 on channel ``l2_data``,
recent trades on ``market_trades``, the ticker on ``ticker``) followed by updates, and heartbeats
every second. Every message a connection gets carries ``sequence_num``, one more than the one
before on that connection. Unknown products and malformed requests get
``{"type": "error", "message": ...}``, and the whole subscribe message is refused.

Tests drive the market (``set_book``, ``update_book``, ``trade``, ``ticker``) and the faults
(``skip_sequence``, ``skip_heartbeat``, ``drop``, ``go_silent``, ``send_raw``, ``send_error``,
``send_message``), and watch what clients sent through ``sessions``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["CoinbaseServer", "Session", "rfc3339"]

SUBSCRIBE_TIMEOUT_S = 5.0
# Subscribable channels and the channel their messages arrive on.
REPLY_CHANNEL = {
    "level2": "l2_data",
    "market_trades": "market_trades",
    "ticker": "ticker",
    "heartbeats": "heartbeats",
}
RECENT_TRADES = 50
Level = tuple[str, str]


def rfc3339(ns: int) -> str:
    """Coinbase's spelling of a time: UTC with nine fraction digits."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@dataclass
class Session:
    """One client connection, as the server sees it."""

    ws: ServerConnection
    opened: float = field(default_factory=time.monotonic)
    # (seconds after opening, frame) for every frame the client sent.
    received: list[tuple[float, str]] = field(default_factory=list)
    subscriptions: dict[str, set[str]] = field(default_factory=dict)
    sequence: int = 0
    heartbeat_counter: int = 0
    open: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def requests(self) -> list[dict[str, Any]]:
        """The JSON objects the client sent, in order (other frames left out)."""
        parsed = []
        for _, text in self.received:
            try:
                request = json.loads(text)
            except ValueError:
                continue
            if isinstance(request, dict):
                parsed.append(request)
        return parsed

    def subscribed(self, channel: str, product: str | None = None) -> bool:
        products = self.subscriptions.get(channel)
        return products is not None and (product is None or product in products)


class CoinbaseServer:
    def __init__(
        self,
        products: Iterable[str] = ("BTC-USD", "ETH-USD"),
        *,
        subscribe_timeout_s: float = SUBSCRIBE_TIMEOUT_S,
        heartbeat_interval_s: float | None = 1.0,
    ) -> None:
        self.products = set(products)
        self.subscribe_timeout_s = subscribe_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.books: dict[str, dict[str, dict[str, str]]] = {
            product: {"bid": {}, "offer": {}} for product in self.products
        }
        self.recent_trades: dict[str, list[dict[str, str]]] = {p: [] for p in self.products}
        self.sessions: list[Session] = []
        self.silent = False
        self._next_trade_id = 1000
        self._server: Server | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in self.sessions:
            await _cancel(session.tasks)

    async def __aenter__(self) -> CoinbaseServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"ws://{host}:{port}"

    def live_sessions(self) -> list[Session]:
        return [session for session in self.sessions if session.open]

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.005)

    async def wait_subscribed(
        self, channel: str, product: str | None = None, *, sessions: int = 1, timeout_s: float = 5.0
    ) -> None:
        """Until the ``sessions``-th connection (counting all so far) subscribed to it."""

        def done() -> bool:
            return len(self.sessions) >= sessions and self.sessions[sessions - 1].subscribed(
                channel, product
            )

        await self.wait_until(done, timeout_s)

    # -- the market -----------------------------------------------------------------------

    def set_book(
        self, product: str, bids: Iterable[Level] = (), asks: Iterable[Level] = ()
    ) -> None:
        """Replace the book later snapshots are made of (sends nothing)."""
        self.books[product] = {"bid": dict(bids), "offer": dict(asks)}

    async def update_book(
        self,
        product: str,
        bids: Iterable[Level] = (),
        asks: Iterable[Level] = (),
        *,
        event_time: str | None = None,
    ) -> None:
        """Change levels (size "0" removes one) and send the update to level2 subscribers."""
        stamp = event_time or rfc3339(time.time_ns())
        updates = []
        for side, levels in (("bid", bids), ("offer", asks)):
            for price, size in levels:
                if float(size) == 0.0:
                    self.books[product][side].pop(price, None)
                else:
                    self.books[product][side][price] = size
                updates.append(_level(side, price, size, stamp))
        event = {"type": "update", "product_id": product, "updates": updates}
        await self._publish("level2", product, [event])

    async def trade(
        self,
        product: str,
        price: str,
        size: str,
        side: str = "BUY",
        *,
        trade_id: str | None = None,
        at: str | None = None,
    ) -> dict[str, str]:
        """A trade on ``product``, sent to market_trades subscribers; returns it as sent."""
        if trade_id is None:
            self._next_trade_id += 1
            trade_id = str(self._next_trade_id)
        trade = {
            "trade_id": trade_id,
            "product_id": product,
            "price": price,
            "size": size,
            "side": side,
            "time": at or rfc3339(time.time_ns()),
        }
        self.recent_trades[product] = [trade, *self.recent_trades[product]][:RECENT_TRADES]
        await self._publish("market_trades", product, [{"type": "update", "trades": [trade]}])
        return trade

    async def ticker(self, product: str, *, timestamp: str | None = None) -> None:
        """The product's best bid and offer, sent to ticker subscribers."""
        event = {"type": "update", "tickers": [self._ticker(product)]}
        await self._publish("ticker", product, [event], timestamp=timestamp)

    async def heartbeat(self) -> None:
        """One heartbeat to every connection subscribed to heartbeats."""
        for session in self.live_sessions():
            if session.subscribed("heartbeats"):
                await self._heartbeat(session)

    # -- faults ---------------------------------------------------------------------------

    def skip_sequence(self, count: int = 1) -> None:
        """The next message on every connection skips ``count`` sequence numbers."""
        for session in self.live_sessions():
            session.sequence += count

    def skip_heartbeat(self, count: int = 1) -> None:
        """The next heartbeat on every connection skips ``count`` counter values."""
        for session in self.live_sessions():
            session.heartbeat_counter += count

    def drop(self) -> None:
        """Cut every connection without a closing handshake, as a network failure would."""
        for session in self.live_sessions():
            session.open = False
            session.ws.transport.abort()

    def go_silent(self, silent: bool = True) -> None:
        """Send nothing at all (no data, no heartbeats, no replies) until called with False."""
        self.silent = silent

    async def send_raw(self, text: str) -> None:
        """A frame exactly as given, to every connection, without a sequence number."""
        for session in self.live_sessions():
            await self._send_text(session, text)

    async def send_error(self, message: str) -> None:
        for session in self.live_sessions():
            await self._send_text(session, json.dumps({"type": "error", "message": message}))

    async def send_message(
        self, channel: str, events: list[Any], *, timestamp: str | None = None
    ) -> None:
        """A numbered message on any channel (unknown ones too), to every connection."""
        for session in self.live_sessions():
            await self._send(session, channel, events, timestamp)

    # -- serving --------------------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        session = Session(ws)
        self.sessions.append(session)
        expiry = asyncio.create_task(self._expire(session))
        session.tasks.add(expiry)
        try:
            async for frame in ws:
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                session.received.append((time.monotonic() - session.opened, text))
                await self._on_request(session, text)
        except ConnectionClosed:
            pass
        finally:
            session.open = False
            await _cancel(session.tasks)

    async def _expire(self, session: Session) -> None:
        await asyncio.sleep(self.subscribe_timeout_s)
        if not session.subscriptions:
            session.open = False
            await session.ws.close(code=1008, reason="no subscribe within 5 s")

    async def _on_request(self, session: Session, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            await self._refuse(session, "malformed request: not JSON")
            return
        if not isinstance(request, dict) or request.get("type") not in ("subscribe", "unsubscribe"):
            await self._refuse(session, "malformed request: type must be subscribe or unsubscribe")
            return
        channel = request.get("channel")
        if channel not in REPLY_CHANNEL:
            await self._refuse(session, f"failure to subscribe: unknown channel {channel!r}")
            return
        products = request.get("product_ids", [])
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            await self._refuse(session, "malformed request: product_ids must be a list of strings")
            return
        unknown = [product for product in products if product not in self.products]
        if unknown:
            await self._refuse(
                session, f"failure to subscribe: {unknown[0]} is not a valid product"
            )
            return
        if not products and channel != "heartbeats" and request["type"] == "subscribe":
            await self._refuse(session, f"failure to subscribe: {channel} needs product_ids")
            return
        if request["type"] == "subscribe":
            await self._subscribe(session, channel, products)
        else:
            self._unsubscribe(session, channel, products)
            await self._acknowledge(session)

    async def _subscribe(self, session: Session, channel: str, products: list[str]) -> None:
        fresh = [p for p in products if p not in session.subscriptions.get(channel, set())]
        session.subscriptions.setdefault(channel, set()).update(products)
        await self._acknowledge(session)
        if channel == "heartbeats":
            if self.heartbeat_interval_s is not None and not any(
                task.get_name() == "heartbeats" for task in session.tasks
            ):
                task = asyncio.create_task(self._heartbeats(session), name="heartbeats")
                session.tasks.add(task)
            return
        for product in fresh:
            await self._send(session, REPLY_CHANNEL[channel], [self._snapshot(channel, product)])

    def _unsubscribe(self, session: Session, channel: str, products: list[str]) -> None:
        if not products:
            session.subscriptions.pop(channel, None)
            return
        remaining = session.subscriptions.get(channel, set()) - set(products)
        if remaining:
            session.subscriptions[channel] = remaining
        else:
            session.subscriptions.pop(channel, None)

    async def _acknowledge(self, session: Session) -> None:
        current = {channel: sorted(products) for channel, products in session.subscriptions.items()}
        await self._send(session, "subscriptions", [{"subscriptions": current}])

    async def _refuse(self, session: Session, message: str) -> None:
        await self._send_text(session, json.dumps({"type": "error", "message": message}))

    def _snapshot(self, channel: str, product: str) -> dict[str, Any]:
        if channel == "level2":
            stamp = rfc3339(time.time_ns())
            book = self.books[product]
            bids = sorted(book["bid"].items(), key=lambda level: -float(level[0]))
            asks = sorted(book["offer"].items(), key=lambda level: float(level[0]))
            updates = [_level("bid", p, s, stamp) for p, s in bids]
            updates += [_level("offer", p, s, stamp) for p, s in asks]
            return {"type": "snapshot", "product_id": product, "updates": updates}
        if channel == "market_trades":
            return {"type": "snapshot", "trades": list(self.recent_trades[product])}
        return {"type": "snapshot", "tickers": [self._ticker(product)]}

    def _ticker(self, product: str) -> dict[str, str]:
        book = self.books[product]
        best_bid = max(book["bid"].items(), key=lambda level: float(level[0]), default=("", ""))
        best_ask = min(book["offer"].items(), key=lambda level: float(level[0]), default=("", ""))
        last = self.recent_trades[product]
        return {
            "type": "ticker",
            "product_id": product,
            "price": last[0]["price"] if last else "",
            "best_bid": best_bid[0],
            "best_bid_quantity": best_bid[1],
            "best_ask": best_ask[0],
            "best_ask_quantity": best_ask[1],
        }

    async def _publish(
        self, channel: str, product: str, events: list[Any], *, timestamp: str | None = None
    ) -> None:
        for session in self.live_sessions():
            if session.subscribed(channel, product):
                await self._send(session, REPLY_CHANNEL[channel], events, timestamp)

    async def _heartbeats(self, session: Session) -> None:
        assert self.heartbeat_interval_s is not None
        while session.open:
            await asyncio.sleep(self.heartbeat_interval_s)
            await self._heartbeat(session)

    async def _heartbeat(self, session: Session) -> None:
        session.heartbeat_counter += 1
        event = {
            "current_time": rfc3339(time.time_ns()),
            "heartbeat_counter": session.heartbeat_counter,
        }
        await self._send(session, "heartbeats", [event])

    async def _send(
        self, session: Session, channel: str, events: Sequence[Any], timestamp: str | None = None
    ) -> None:
        if self.silent or not session.open:
            return
        # Numbering and sending under one lock keeps sequence_num in the order frames leave.
        async with session.lock:
            message = {
                "channel": channel,
                "client_id": "",
                "timestamp": timestamp or rfc3339(time.time_ns()),
                "sequence_num": session.sequence,
                "events": list(events),
            }
            session.sequence += 1
            await self._write(session, json.dumps(message))

    async def _send_text(self, session: Session, text: str) -> None:
        if self.silent or not session.open:
            return
        async with session.lock:
            await self._write(session, text)

    @staticmethod
    async def _write(session: Session, text: str) -> None:
        try:
            await session.ws.send(text)
        except ConnectionClosed:
            session.open = False


def _level(side: str, price: str, size: str, event_time: str) -> dict[str, str]:
    return {"side": side, "event_time": event_time, "price_level": price, "new_quantity": size}


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    current = asyncio.current_task()
    pending = [task for task in tasks if task is not current and not task.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
