"""What every venue adapter is: a sans-IO translator from one exchange's protocol to our events.

An adapter never touches a socket. The connection driver (live), the replay driver (capture
files) and tests feed it frames and REST replies and carry out what it returns: events to
publish, frames to send, REST requests to make, problems to count, a reconnect to perform.
So the same parsing, book and checksum code runs live, in replay and under test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import msgspec

from actors.book import OrderBook
from core.events import AnyEvent, Gap, MarketChannel, Quote, instrument_id

__all__ = [
    "ProblemKind",
    "Problem",
    "RestRequest",
    "Output",
    "VenueConfig",
    "ConnectionSpec",
    "VenueAdapter",
    "ConfigError",
    "Rotation",
]

ProblemKind = Literal[
    "parse_error",  # malformed JSON, missing fields, non-numeric or negative values
    "unknown_message",  # well-formed but not something we know
    "checksum_failure",  # the book disagrees with the exchange's checksum
    "sequence_error",  # out-of-order or missing sequence numbers
    "crossed_book",  # best bid >= best ask after an update
    "exchange_error",  # the venue replied with an error (bad symbol, rate limit, auth)
    "oversized_frame",
]


# How a connection is replaced at its ``ConnectionSpec.max_age_s``. "reconnect": closed, then
# opened again, with a gap. "overlap" (make before break): the replacement opens first and the
# old one closes once the replacement delivers; the adapter is then handed every frame of the old
# connection followed by every frame of the new one, whose first ones repeat what it has seen and
# which it must recognise by the venue's ids and drop.
Rotation = Literal["reconnect", "overlap"]


class ConfigError(ValueError):
    """A venue configuration that can never work (unknown symbol format, missing keys)."""


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    detail: str
    instrument: str | None = None


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A REST call an adapter needs. Replays answer it with a recorded reply for the same
    ``endpoint`` and ``symbol`` (the venue's own spelling), whatever the exact URL was."""

    endpoint: str
    symbol: str
    url: str


@dataclass(slots=True)
class Output:
    """What the driver must do after handing the adapter a frame or reply."""

    events: list[AnyEvent] = field(default_factory=list)
    send: list[str] = field(default_factory=list)
    rest: list[RestRequest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Set when the connection cannot go on (resync, the venue said so): drop it and reconnect,
    # with backoff.
    reconnect: str | None = None
    # Set when retrying can never help (rejected keys, a plan without this feed): stop for good
    # and show this reason as the feed's status.
    fatal: str | None = None

    def extend(self, other: Output) -> None:
        self.events.extend(other.events)
        self.send.extend(other.send)
        self.rest.extend(other.rest)
        self.problems.extend(other.problems)
        self.reconnect = self.reconnect or other.reconnect
        self.fatal = self.fatal or other.fatal


class VenueConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What to stream from one venue. Symbols are normalized: ``BTC-USDT`` for crypto pairs,
    plain tickers (``AAPL``) for stocks; the adapter maps them to the venue's spelling."""

    venue: str
    symbols: list[str]
    channels: list[MarketChannel] = msgspec.field(
        default_factory=lambda: ["trades", "quotes", "book"]
    )
    ws_url: str | None = None
    rest_url: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    # Venue-specific switches, e.g. Alpaca's {"feed": "iex"}.
    options: dict[str, str] = msgspec.field(default_factory=dict)
    # Upper bound on frame size; larger frames are skipped and counted as oversized_frame.
    max_frame_bytes: int = 4 * 1024 * 1024
    # The replay venue: stream this capture file through the adapter instead of connecting
    # (REST replies from ``replay_rest_files``, such as depth snapshots), a frame every
    # ``replay_pace_s`` seconds or as fast as possible, from the start again when ``replay_loop``.
    replay_file: str | None = None
    replay_rest_files: list[str] = msgspec.field(default_factory=list)
    replay_pace_s: float | None = None
    replay_loop: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """One WebSocket connection and the symbols it carries."""

    name: str
    url: str
    symbols: tuple[str, ...]
    # Reconnect ahead of a venue-imposed lifetime (Binance closes connections after 24 h).
    max_age_s: float | None = None
    # Wait this long before the first connect: connections of a venue that limits messages per
    # IP spread their opening subscribes out (they run in separate processes, so nothing is
    # shared to coordinate them).
    open_delay_s: float = 0.0


class VenueAdapter(ABC):
    """Base of all adapters; one module per venue under ``actors/venues/``."""

    venue: ClassVar[str]
    default_ws_url: ClassVar[str]
    default_rest_url: ClassVar[str] = ""
    # Application-level ping cadence (None: the venue is fine with WebSocket pings alone).
    ping_interval_s: ClassVar[float | None] = None
    # The watchdog closes a connection that has been silent this long.
    silence_timeout_s: ClassVar[float] = 30.0
    # Only venues whose messages carry ids to drop repeats by can replace connections without a gap.
    rotation: ClassVar[Rotation] = "reconnect"

    def __init__(self, config: VenueConfig) -> None:
        self.config = config
        self.ws_url = config.ws_url or self.default_ws_url
        self.rest_url = config.rest_url or self.default_rest_url
        self.books: dict[str, OrderBook] = {}
        # Venues with book checksums count the ones that matched (reported by replays).
        self.checksums_verified = 0

    # -- what to connect to ---------------------------------------------------------------

    @abstractmethod
    def connections(self) -> list[ConnectionSpec]:
        """The connections to hold, splitting symbols where a venue caps streams per connection."""

    # -- protocol events ------------------------------------------------------------------

    @abstractmethod
    def on_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        """The socket is open: return the auth/subscribe frames. Forget state held for ``conn``."""

    @abstractmethod
    def on_message(self, conn: ConnectionSpec, frame: str | bytes, receive_ts_ns: int) -> Output:
        """One frame from the venue. Never raises: bad input becomes a ``Problem``."""

    def on_rest_reply(
        self, request: RestRequest, status: int, body: bytes, receive_ts_ns: int
    ) -> Output:
        """The reply to a ``RestRequest`` this adapter asked for."""
        return Output(problems=[Problem("unknown_message", f"unexpected REST reply {request}")])

    def on_close(self, conn: ConnectionSpec, reason: str, now_ns: int) -> Output:
        """The connection is gone: everything it carried may have missed events."""
        out = Output()
        for symbol in conn.symbols:
            instrument = self.instrument(symbol)
            book = self.books.get(instrument)
            if book is not None:
                book.clear()
            out.events.append(
                Gap(
                    instrument=instrument,
                    exchange_ts_ns=now_ns,
                    receive_ts_ns=now_ns,
                    reason=reason,
                )
            )
        return out

    def on_replacement_open(self, conn: ConnectionSpec, now_ns: int) -> Output:
        """The connection replacing ``conn`` at its age limit is open (rotation "overlap"): the
        frames to send on it. Unlike ``on_open`` nothing is forgotten: ``conn`` still delivers,
        and the replacement's frames follow its last one."""
        return Output()

    def ping(self, conn: ConnectionSpec, now_ns: int) -> Output:
        """Application-level keep-alive frames, asked for every ``ping_interval_s``."""
        return Output()

    def redact_outbound(self, frame: str) -> str:
        """A sent frame as capture files may keep it: venues that send credentials mask them."""
        return frame

    # -- helpers for subclasses -----------------------------------------------------------

    def split_connections(
        self, symbols: Sequence[str], per_connection: int
    ) -> list[ConnectionSpec]:
        """Connections of at most ``per_connection`` symbols each, named ``<venue>-0``, ``-1``..."""
        return [
            ConnectionSpec(
                name=f"{self.venue}-{start // per_connection}",
                url=self.ws_url,
                symbols=tuple(symbols[start : start + per_connection]),
            )
            for start in range(0, len(symbols), per_connection)
        ]

    def instrument(self, symbol: str) -> str:
        return instrument_id(self.venue, symbol)

    def book(self, symbol: str) -> OrderBook:
        instrument = self.instrument(symbol)
        book = self.books.get(instrument)
        if book is None:
            book = self.books[instrument] = OrderBook(instrument)
        return book

    def quote_from_book(self, symbol: str, exchange_ts_ns: int, receive_ts_ns: int) -> Quote:
        """Best bid/ask derived from the book, for venues without a separate ticker."""
        book = self.book(symbol)
        bid, ask = book.best_bid(), book.best_ask()
        return Quote(
            instrument=book.instrument,
            exchange_ts_ns=exchange_ts_ns,
            receive_ts_ns=receive_ts_ns,
            bid_price=bid[0] if bid else None,
            bid_size=bid[1] if bid else None,
            ask_price=ask[0] if ask else None,
            ask_size=ask[1] if ask else None,
        )

    # -- replay ---------------------------------------------------------------------------

    @classmethod
    def config_from_capture(cls, url: str, sent: list[str]) -> VenueConfig:
        """The configuration a recorded connection was made with (its URL and sent frames)."""
        raise NotImplementedError(f"{cls.venue} cannot derive a configuration from a capture")

    def rest_key(self, url: str) -> tuple[str, str] | None:
        """(endpoint, symbol) a recorded REST URL answers, as ``RestRequest``; None if not ours."""
        return None
