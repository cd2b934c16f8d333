"""A local stand-in for Binance spot market data, for tests that need real sockets.

One ``websockets`` server on 127.0.0.1 speaks both halves of the protocol a feed uses:

* combined streams at ``/stream?streams=a/b/c`` (frames ``{"stream": ..., "data": ...}``) with
  the live ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` methods and their acks and
  error replies;
* ``GET /api/v3/depth?symbol=X&limit=N`` snapshots of the server's own order books, answered
  from the same port through the ``process_request`` hook.

The server keeps a book per symbol and numbers its diff events like Binance (``U``..``u``), so a
client's book can be checked against ``snapshot()``. Like Binance it sends every event to every
connection subscribed to its stream, so a client holding two connections (rotating one make
before break) gets each event on both; ``ClientSession.published`` shows which. Faults are
scripted by the test: a sequence gap (``depth_update(..., skip=n)``), a dropped connection,
silence, refused connections, raw frames of any shape, error replies to methods and failing
REST replies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = ["BinanceServer", "ClientSession"]

Level = tuple[str, str]
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


@dataclass
class ClientSession:
    """One accepted WebSocket connection and what it asked for."""

    path: str
    streams: set[str]
    connection: ServerConnection
    sent: list[str] = field(default_factory=list)
    # The stream frames published to it (what the client sent is ``sent``).
    published: list[str] = field(default_factory=list)


@dataclass
class _Book:
    bids: dict[Decimal, Level] = field(default_factory=dict)
    asks: dict[Decimal, Level] = field(default_factory=dict)
    last_update_id: int = 0

    def apply(self, bids: list[Level], asks: list[Level]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = (price, size)

    def levels(self, limit: int) -> tuple[list[Level], list[Level]]:
        bids = [self.bids[p] for p in sorted(self.bids, reverse=True)[:limit]]
        asks = [self.asks[p] for p in sorted(self.asks)[:limit]]
        return bids, asks


class BinanceServer:
    """``async with BinanceServer() as server:`` then point a feed at ``ws_url``/``rest_url``."""

    def __init__(self) -> None:
        self._server: Server | None = None
        self._books: dict[str, _Book] = {}
        self._rest_faults: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._method_faults: deque[dict[str, Any]] = deque()
        self._connected = asyncio.Condition()
        self.sessions: list[ClientSession] = []
        self.snapshot_requests: list[str] = []
        # While set, nothing is published (the connection stays open): a venue gone quiet.
        self.silent = False
        # While set, WebSocket upgrades are answered 503: a venue turning new connections away.
        self.refuse_connections = False
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> BinanceServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._http, compression=None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_sessions(self) -> list[ClientSession]:
        return [s for s in self.sessions if s.connection.close_code is None]

    async def wait_for_sessions(self, count: int, timeout_s: float = 5.0) -> ClientSession:
        """Wait until ``count`` connections were accepted in all; returns the latest."""
        async with self._connected:
            await asyncio.wait_for(
                self._connected.wait_for(lambda: len(self.sessions) >= count), timeout_s
            )
        return self.sessions[-1]

    # -- market state ---------------------------------------------------------------------

    def add_market(
        self, symbol: str, bids: list[Level], asks: list[Level], *, update_id: int = 1000
    ) -> None:
        """A symbol (venue spelling, ``BTCUSDT``) with its book as of ``update_id``."""
        book = self._books[symbol] = _Book(last_update_id=update_id)
        book.apply(bids, asks)

    def snapshot(self, symbol: str, limit: int = 1000) -> dict[str, Any]:
        book = self._books[symbol]
        bids, asks = book.levels(limit)
        return {
            "lastUpdateId": book.last_update_id,
            "bids": [list(level) for level in bids],
            "asks": [list(level) for level in asks],
        }

    def best(self, symbol: str) -> tuple[Level | None, Level | None]:
        bids, asks = self._books[symbol].levels(1)
        return (bids[0] if bids else None, asks[0] if asks else None)

    # -- publishing -----------------------------------------------------------------------

    async def depth_update(
        self,
        symbol: str,
        bids: list[Level],
        asks: list[Level],
        *,
        updates: int = 1,
        skip: int = 0,
        stream_suffix: str = "@depth@100ms",
    ) -> tuple[int, int]:
        """Change the book and publish the diff covering ``updates`` update ids. ``skip``
        ids vanish first (the client sees ``U != previous u + 1``). Returns (U, u)."""
        book = self._books[symbol]
        first = book.last_update_id + skip + 1
        last = first + updates - 1
        book.apply(bids, asks)
        book.last_update_id = last
        data = {
            "e": "depthUpdate",
            "E": _now_ms(),
            "s": symbol,
            "U": first,
            "u": last,
            "b": [list(level) for level in bids],
            "a": [list(level) for level in asks],
        }
        await self.publish(symbol.lower() + stream_suffix, data)
        return first, last

    async def trade(
        self,
        symbol: str,
        trade_id: int,
        price: str,
        size: str,
        *,
        buyer_is_maker: bool = False,
        aggregate: bool = False,
    ) -> None:
        now = _now_ms()
        kind = "aggTrade" if aggregate else "trade"
        ids = {"a": trade_id, "f": trade_id, "l": trade_id} if aggregate else {"t": trade_id}
        data = {
            "e": kind,
            "E": now,
            "s": symbol,
            **ids,
            "p": price,
            "q": size,
            "T": now,
            "m": buyer_is_maker,
            "M": True,
        }
        await self.publish(f"{symbol.lower()}@{kind}", data)

    async def book_ticker(self, symbol: str) -> None:
        """The best bid and ask of the server's book, as ``<symbol>@bookTicker``."""
        bid, ask = self.best(symbol)
        data = {
            "u": self._books[symbol].last_update_id,
            "s": symbol,
            "b": bid[0] if bid else "0.00000000",
            "B": bid[1] if bid else "0.00000000",
            "a": ask[0] if ask else "0.00000000",
            "A": ask[1] if ask else "0.00000000",
        }
        await self.publish(f"{symbol.lower()}@bookTicker", data)

    async def kline(
        self,
        symbol: str,
        start_ms: int,
        ohlcv: tuple[str, str, str, str, str],
        *,
        trades: int = 1,
        closed: bool = True,
    ) -> None:
        open_, high, low, close, volume = ohlcv
        kline = {
            "t": start_ms,
            "T": start_ms + 59_999,
            "s": symbol,
            "i": "1m",
            "f": 1,
            "L": trades,
            "o": open_,
            "c": close,
            "h": high,
            "l": low,
            "v": volume,
            "n": trades,
            "x": closed,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        }
        data = {"e": "kline", "E": _now_ms(), "s": symbol, "k": kline}
        await self.publish(f"{symbol.lower()}@kline_1m", data)

    async def publish(self, stream: str, data: Any) -> None:
        """One combined-stream frame to every session subscribed to ``stream``."""
        if self.silent:
            return
        frame = json.dumps({"stream": stream, "data": data})
        for session in self.open_sessions:
            if stream in session.streams:
                session.published.append(frame)
                await _send(session.connection, frame)

    async def send_raw(self, frame: str | bytes) -> None:
        """Any frame at all (malformed, unknown, an error) to every open session."""
        for session in self.open_sessions:
            await _send(session.connection, frame)

    # -- faults ---------------------------------------------------------------------------

    async def drop_connections(self) -> None:
        """Cut every connection without a closing handshake, like a network failure."""
        for session in self.open_sessions:
            transport = session.connection.transport
            transport.abort()
        for session in list(self.sessions):
            await session.connection.wait_closed()

    def fail_snapshot(self, symbol: str, status: int, body: dict[str, Any]) -> None:
        """The next depth snapshot request for ``symbol`` gets this reply instead."""
        self._rest_faults.setdefault(symbol, deque()).append((status, body))

    def fail_next_request(self, code: int, msg: str, *, nested: bool = True) -> None:
        """The next method request gets an error reply: ``{"error": {...}, "id": N}`` when
        ``nested``, else the older ``{"code": ..., "msg": ..., "id": N}`` shape."""
        self._method_faults.append({"code": code, "msg": msg, "nested": nested})

    # -- protocol -------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        url = urlsplit(connection.request.path)
        if url.path not in {"/stream", "/stream/"}:
            await connection.close(1008, "combined streams live at /stream")
            return
        names = parse_qs(url.query).get("streams", [""])[0]
        session = ClientSession(
            path=connection.request.path,
            streams={name for name in names.split("/") if name},
            connection=connection,
        )
        async with self._connected:
            self.sessions.append(session)
            self._connected.notify_all()
        try:
            async for message in connection:
                text = message if isinstance(message, str) else message.decode()
                session.sent.append(text)
                reply = self._on_request(session, text)
                await _send(connection, json.dumps(reply))
        except ConnectionClosed:
            pass

    def _on_request(self, session: ClientSession, text: str) -> dict[str, Any]:
        try:
            request = json.loads(text)
        except json.JSONDecodeError as error:
            return {"code": 3, "msg": f"Invalid JSON: {error}"}
        if not isinstance(request, dict) or "method" not in request:
            return {"code": 2, "msg": "Invalid request: missing field `method`"}
        request_id = request.get("id")
        if not isinstance(request_id, int) or request_id < 0:
            return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
        method = request["method"]
        if method not in _METHODS:
            return {
                "code": 2,
                "msg": f"Invalid request: unknown variant {method}, expected one of "
                + ", ".join(f"`{m}`" for m in _METHODS),
            }
        if self._method_faults:
            fault = self._method_faults.popleft()
            error = {"code": fault["code"], "msg": fault["msg"]}
            if fault["nested"]:
                return {"error": error, "id": request_id}
            return error | {"id": request_id}
        params = request.get("params") or []
        if method in {"SUBSCRIBE", "UNSUBSCRIBE"}:
            bad = [p for p in params if not _valid_stream(p)]
            if bad:
                error = {"code": 2, "msg": f"Invalid request: invalid stream {bad[0]!r}"}
                return {"error": error, "id": request_id}
            if method == "SUBSCRIBE":
                session.streams.update(params)
            else:
                session.streams.difference_update(params)
            return {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(session.streams), "id": request_id}
        return {"result": None if method == "SET_PROPERTY" else True, "id": request_id}

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if not url.path.startswith("/api/"):
            if self.refuse_connections:
                return _json_response(connection, 503, {"code": -1003, "msg": "Try again later."})
            return None
        if url.path != "/api/v3/depth":
            return _json_response(connection, 404, {"code": -1000, "msg": "Unknown endpoint."})
        query = parse_qs(url.query)
        symbol = query.get("symbol", [""])[0]
        self.snapshot_requests.append(symbol)
        faults = self._rest_faults.get(symbol)
        if faults:
            status, body = faults.popleft()
            return _json_response(connection, status, body)
        if symbol not in self._books:
            return _json_response(connection, 400, {"code": -1121, "msg": "Invalid symbol."})
        limit = int(query.get("limit", ["100"])[0])
        return _json_response(connection, 200, self.snapshot(symbol, limit))


def _valid_stream(name: object) -> bool:
    # Symbols in stream names are lower case; the stream type after "@" may not be.
    if not isinstance(name, str):
        return False
    symbol, at, kind = name.partition("@")
    return bool(symbol and at and kind) and symbol == symbol.lower()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _send(connection: ServerConnection, frame: str | bytes) -> None:
    try:
        await connection.send(frame)
    except ConnectionClosed:
        pass


def _json_response(connection: ServerConnection, status: int, body: Any) -> Response:
    response = connection.respond(status, json.dumps(body))
    # Headers is a multi-dict: assigning would add a second Content-Type.
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json;charset=UTF-8"
    return response
