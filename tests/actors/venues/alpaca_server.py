"""A local stand-in for Alpaca's stock stream (wss://stream.data.alpaca.markets/v2/{feed}).

It speaks the protocol of Alpaca's "WebSocket Stream" documentation: the ``connected`` greeting,
``auth`` within a time limit, ``subscribe``/``unsubscribe`` answered with the whole current
subscription, data as JSON arrays (trade corrections and cancels/errors going to every trades
subscriber of the symbol, unasked), and the error replies (400 invalid syntax, 401 not
authenticated, 402 auth failed, 403 already authenticated, 404 auth timeout, 405 symbol limit
exceeded, 406 connection limit exceeded, 409 insufficient subscription). Faults are scripted by
setting attributes or calling methods: reject the keys, answer auth or subscribe with an error,
drop every connection, go silent, send malformed or unknown frames.

    async with AlpacaServer() as server:
        adapter = AlpacaAdapter(VenueConfig(venue="alpaca", symbols=["AAPL"],
                                            ws_url=server.url, api_key=server.key,
                                            api_secret=server.secret))
        ...
        await server.publish([trade("AAPL", "187.23", 100)])
        await server.publish([cancel("AAPL", 52983525029461, "187.23", 100)])
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = [
    "AlpacaServer",
    "Session",
    "trade",
    "correction",
    "cancel",
    "quote",
    "bar",
    "error",
    "encode_frame",
]

Message = dict[str, Any]
Number = Decimal | int | str

_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
# Corrections ("c") and cancels/errors ("x") go to every trades subscriber of the symbol.
_DATA_CHANNEL = {"t": "trades", "c": "trades", "x": "trades", "q": "quotes", "b": "bars"}
_SYMBOL = re.compile(r"[A-Z]{1,10}(?:\.[A-Z]{1,3})?|\*")
# Decimals go out as JSON numbers written exactly as given: what Alpaca's wire looks like.
_encoder = msgspec.json.Encoder(decimal_format="number")


def encode_frame(messages: list[Message]) -> str:
    """Messages as one Alpaca frame: a JSON array, decimals written as exact JSON numbers."""
    return _encoder.encode(messages).decode()


def _number(value: Number) -> Decimal | int:
    return Decimal(value) if isinstance(value, str) else value


def trade(
    symbol: str,
    price: Number,
    size: Number,
    t: str = "2024-01-02T14:30:00.123456789Z",
    *,
    trade_id: int = 52983525029461,
    exchange: str = "V",
) -> Message:
    """A trade message; a price given as a string ("187.230") goes out with exactly those digits."""
    return {
        "T": "t",
        "S": symbol,
        "i": trade_id,
        "x": exchange,
        "p": _number(price),
        "s": _number(size),
        "c": ["@"],
        "t": t,
        "z": "C",
    }


def correction(
    symbol: str,
    *,
    original: tuple[int, Number, Number],
    corrected: tuple[int, Number, Number],
    t: str = "2024-01-02T14:30:05.5Z",
    exchange: str = "V",
) -> Message:
    """A trade correction; ``original`` and ``corrected`` are (trade id, price, size)."""
    return {
        "T": "c",
        "S": symbol,
        "x": exchange,
        "oi": original[0],
        "op": _number(original[1]),
        "os": _number(original[2]),
        "oc": ["@"],
        "ci": corrected[0],
        "cp": _number(corrected[1]),
        "cs": _number(corrected[2]),
        "cc": ["@"],
        "z": "C",
        "t": t,
    }


def cancel(
    symbol: str,
    trade_id: int,
    price: Number,
    size: Number,
    *,
    action: str = "C",
    t: str = "2024-01-02T14:30:06.5Z",
    exchange: str = "V",
) -> Message:
    """A trade cancel (``action`` "C") or error ("E") of an earlier trade."""
    return {
        "T": "x",
        "S": symbol,
        "i": trade_id,
        "x": exchange,
        "p": _number(price),
        "s": _number(size),
        "a": action,
        "z": "C",
        "t": t,
    }


def quote(
    symbol: str,
    bid: tuple[Number, Number],
    ask: tuple[Number, Number],
    t: str = "2024-01-02T14:30:00.123456789Z",
) -> Message:
    """A quote message; ``bid`` and ``ask`` are (price, size)."""
    return {
        "T": "q",
        "S": symbol,
        "bx": "V",
        "bp": _number(bid[0]),
        "bs": _number(bid[1]),
        "ax": "V",
        "ap": _number(ask[0]),
        "as": _number(ask[1]),
        "c": ["R"],
        "t": t,
        "z": "C",
    }


def bar(
    symbol: str,
    ohlc: tuple[Number, Number, Number, Number],
    volume: Number,
    t: str = "2024-01-02T14:30:00Z",
    *,
    trade_count: int = 12,
    vwap: Number | None = None,
) -> Message:
    """A minute bar message; ``t`` is the start of the minute."""
    message: Message = {
        "T": "b",
        "S": symbol,
        "o": _number(ohlc[0]),
        "h": _number(ohlc[1]),
        "l": _number(ohlc[2]),
        "c": _number(ohlc[3]),
        "v": _number(volume),
        "t": t,
        "n": trade_count,
    }
    if vwap is not None:
        message["vw"] = _number(vwap)
    return message


def error(code: int, msg: str) -> Message:
    return {"T": "error", "code": code, "msg": msg}


@dataclass(eq=False)
class Session:
    """One client connection as the server sees it."""

    ws: ServerConnection
    feed: str
    authenticated: bool = False
    subscriptions: dict[str, set[str]] = field(
        default_factory=lambda: {channel: set() for channel in _CHANNELS}
    )

    def wants(self, message: Message) -> bool:
        channel = _DATA_CHANNEL.get(message.get("T", ""))
        if channel is None:
            return True
        listed = self.subscriptions[channel]
        return "*" in listed or message.get("S") in listed


class AlpacaServer:
    """Alpaca's stock stream on 127.0.0.1, one instance per test (or per feed-actor fixture)."""

    def __init__(
        self,
        *,
        key: str = "test-key",
        secret: str = "test-secret",
        plan_feeds: frozenset[str] = frozenset({"iex", "sip", "delayed_sip"}),
        connection_limit: int = 1,
        symbol_limit: int = 30,
        auth_timeout_s: float = 10.0,
    ) -> None:
        self.key = key
        self.secret = secret
        # Feeds the account's plan includes: another feed is refused at auth with 409.
        self.plan_feeds = plan_feeds
        # Authenticated sessions allowed at once (1 on most Alpaca plans): more get 406.
        self.connection_limit = connection_limit
        # Symbols allowed over trades and quotes together (30 on the free plan): more get 405.
        self.symbol_limit = symbol_limit
        self.auth_timeout_s = auth_timeout_s
        # Scripted faults.
        self.reject_auth = False
        self.auth_error: Message | None = None
        self.subscribe_error: Message | None = None
        self.silent = False
        # What happened, for assertions.
        self.connections = 0
        self.received: list[Message] = []
        self.sessions: list[Session] = []
        self._server: Server | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AlpacaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    def url_for(self, feed: str) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/{feed}"

    @property
    def url(self) -> str:
        return self.url_for("iex")

    # -- scripting --------------------------------------------------------------------------

    def subscribed(self) -> list[Session]:
        """Sessions that are authenticated and subscribed to something."""
        return [s for s in self.sessions if s.authenticated and any(s.subscriptions.values())]

    def actions(self) -> list[str]:
        """The action of every client message so far, in order (``auth``, ``subscribe``...)."""
        return [str(message.get("action")) for message in self.received]

    async def publish(self, messages: list[Message]) -> int:
        """Send data as one frame to every session subscribed to it; how many got it."""
        reached = 0
        for session in list(self.sessions):
            if not session.authenticated:
                continue
            wanted = [m for m in messages if session.wants(m)]
            if wanted and await self._send(session, wanted):
                reached += 1
        return reached

    async def send_raw(self, text: str | bytes) -> None:
        """Send a frame exactly as given (malformed JSON, unknown messages) to every session."""
        for session in list(self.sessions):
            if not self.silent:
                try:
                    await session.ws.send(text)
                except ConnectionClosed:
                    pass

    async def drop(self) -> None:
        """Cut every connection without a close handshake, as a network failure would."""
        for session in list(self.sessions):
            self._forget(session)
            session.ws.transport.abort()

    async def wait_for(
        self, condition: Callable[[], bool], timeout_s: float = 5.0, what: str = ""
    ) -> None:
        """Wait until ``condition()`` holds, at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s} s for {what or condition}")
            await asyncio.sleep(0.005)

    # -- protocol ---------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        session = Session(ws=ws, feed=path.rstrip("/").rpartition("/")[2])
        self.connections += 1
        self.sessions.append(session)
        try:
            await self._send(session, [{"T": "success", "msg": "connected"}])
            deadline = time.monotonic() + self.auth_timeout_s
            while True:
                if session.authenticated:
                    text = await ws.recv()
                else:
                    try:
                        text = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                    except TimeoutError:
                        await self._refuse(session, error(404, "auth timeout"))
                        return
                if not await self._on_client(session, text):
                    return
        except ConnectionClosed:
            pass
        finally:
            self._forget(session)

    async def _on_client(self, session: Session, text: str | bytes) -> bool:
        """Answer one client message; False when the server ends the connection."""
        try:
            message = json.loads(text)
            action = message["action"]
        except (ValueError, TypeError, KeyError):
            await self._send(session, [error(400, "invalid syntax")])
            return True
        self.received.append(message)
        if action == "auth":
            return await self._auth(session, message)
        if action in ("subscribe", "unsubscribe"):
            await self._subscribe(session, message, add=action == "subscribe")
            return True
        await self._send(session, [error(400, "invalid syntax")])
        return True

    async def _auth(self, session: Session, message: Message) -> bool:
        if session.authenticated:
            await self._send(session, [error(403, "already authenticated")])
            return True
        if self.auth_error is not None:
            await self._refuse(session, self.auth_error)
            return False
        if self.reject_auth or (message.get("key"), message.get("secret")) != (
            self.key,
            self.secret,
        ):
            await self._refuse(session, error(402, "auth failed"))
            return False
        if session.feed not in self.plan_feeds:
            await self._refuse(session, error(409, "insufficient subscription"))
            return False
        if sum(s.authenticated for s in self.sessions) >= self.connection_limit:
            await self._refuse(session, error(406, "connection limit exceeded"))
            return False
        session.authenticated = True
        await self._send(session, [{"T": "success", "msg": "authenticated"}])
        return True

    async def _subscribe(self, session: Session, message: Message, *, add: bool) -> None:
        if not session.authenticated:
            await self._send(session, [error(401, "not authenticated")])
            return
        if self.subscribe_error is not None:
            await self._send(session, [self.subscribe_error])
            return
        changes: dict[str, set[str]] = {}
        for channel in _CHANNELS:
            symbols = message.get(channel, [])
            if not isinstance(symbols, list) or not all(
                isinstance(s, str) and _SYMBOL.fullmatch(s) for s in symbols
            ):
                await self._send(session, [error(400, "invalid syntax")])
                return
            changes[channel] = set(symbols)
        current = session.subscriptions
        updated = {
            channel: current[channel] | changes[channel]
            if add
            else current[channel] - changes[channel]
            for channel in _CHANNELS
        }
        if len(updated["trades"] | updated["quotes"]) > self.symbol_limit:
            await self._send(session, [error(405, "symbol limit exceeded")])
            return
        session.subscriptions = updated
        reply: Message = {"T": "subscription"}
        reply.update({channel: sorted(updated[channel]) for channel in _CHANNELS})
        # Subscribing to trades brings corrections and cancels along.
        reply["corrections"] = sorted(updated["trades"])
        reply["cancelErrors"] = sorted(updated["trades"])
        await self._send(session, [reply])

    async def _refuse(self, session: Session, reply: Message) -> None:
        await self._send(session, [reply])
        self._forget(session)
        await session.ws.close()

    async def _send(self, session: Session, messages: list[Message]) -> bool:
        if self.silent:
            return False
        try:
            await session.ws.send(encode_frame(messages))
        except ConnectionClosed:
            return False
        return True

    def _forget(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
