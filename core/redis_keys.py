"""The one Redis key scheme: every key the platform reads or writes is built here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from core.events import (
    CHANNELS,
    MODEL_CHANNELS,
    AlertTriggered,
    AnyEvent,
    Bar,
    BookDelta,
    BookSnapshot,
    Channel,
    FeedStatus,
    Forecast,
    Gap,
    Insight,
    Quote,
    Trade,
    TradeCancel,
    TradeCorrection,
)
from core.intervals import Interval

__all__ = [
    "PREFIX",
    "QUOTES_HASH",
    "EVENT_FIELD",
    "InstrumentStream",
    "stream_key",
    "status_stream_key",
    "alert_stream_key",
    "channels_of",
    "PREDICTION_INTEREST",
    "PREDICTION_PUBLISH_LOCK",
    "rate_limit_key",
    "live_connections_key",
    "revoked_session_key",
    "session_version_key",
    "revoked_client_key",
    "REVOCATIONS_CHANNEL",
]

PREFIX = "finone"
# One hash, field = instrument id, value = the latest encoded Quote: many quotes in one HMGET.
QUOTES_HASH = f"{PREFIX}:quotes"
# Sorted set: name of a model channel's stream (``predictions:alpaca:IBM``,
# ``insights:1m:binance:BTC-USDT``, see InstrumentStream) -> when a live-feed replica last had a
# client wanting it.
PREDICTION_INTEREST = f"{PREFIX}:predictions:interest"
# Held by the one inference replica publishing forecasts this round.
PREDICTION_PUBLISH_LOCK = f"{PREFIX}:predictions:publish-lock"
# Each stream entry holds one encoded event under this field.
EVENT_FIELD = b"e"
_CHANNELS: dict[str, Channel] = {channel: channel for channel in CHANNELS}
_INTERVALS: dict[str, Interval] = {interval: interval for interval in get_args(Interval)}

_CHANNEL_OF: dict[type, tuple[Channel, ...]] = {
    Trade: ("trades",),
    # On the trades stream, so its readers meet a revision after the trade it revises.
    TradeCorrection: ("trades",),
    TradeCancel: ("trades",),
    Quote: ("quotes",),
    BookSnapshot: ("book",),
    BookDelta: ("book",),
    Bar: ("bars",),
    Forecast: ("predictions",),
    Insight: ("insights",),
    # A gap concerns everything a reader of the instrument may have missed.
    Gap: ("trades", "quotes", "book", "bars"),
}


@dataclass(frozen=True, slots=True)
class InstrumentStream:
    """A channel's stream of one instrument: ``name`` is what the live feed and the interest
    set call it (``trades:binance:BTC-USDT``), ``key`` where Redis keeps it (the name under
    ``finone:stream:``).

    A model channel has one stream per bar interval, so that the latest forecast of one interval
    never stands for another's: daily forecasts keep the names they had before there were
    others (``predictions:alpaca:IBM``), the others' carry their interval before the instrument
    (``predictions:1m:binance:BTC-USDT``). The feeds' channels carry every interval in one
    stream (each bar says its own)."""

    channel: Channel
    instrument: str
    interval: Interval = "1d"

    def __post_init__(self) -> None:
        if self.interval != "1d" and self.channel not in MODEL_CHANNELS:
            raise ValueError(f"{self.channel} streams are not kept per interval")

    @property
    def name(self) -> str:
        if self.interval == "1d":
            return f"{self.channel}:{self.instrument}"
        return f"{self.channel}:{self.interval}:{self.instrument}"

    @property
    def key(self) -> str:
        return f"{PREFIX}:stream:{self.name}"

    @classmethod
    def parse(cls, name: str) -> InstrumentStream | None:
        """The stream ``name`` names; None for a name no stream has. The instrument is taken as
        it is written, not checked."""
        head, _, rest = name.partition(":")
        channel = _CHANNELS.get(head)
        if channel is None:
            return None
        lead, _, instrument = rest.partition(":")
        # An instrument id holds one colon (venue:SYMBOL): a second one says an interval leads.
        if instrument.count(":") != 1:
            return cls(channel, rest)
        interval = _INTERVALS.get(lead)
        if channel not in MODEL_CHANNELS or interval is None or interval == "1d":
            return None
        return cls(channel, instrument, interval)


def stream_key(channel: Channel, instrument: str) -> str:
    """``finone:stream:trades:binance:BTC-USDT``"""
    return InstrumentStream(channel, instrument).key


def status_stream_key(venue: str) -> str:
    return f"{PREFIX}:stream:status:{venue}"


def alert_stream_key(user_id: str) -> str:
    """One user's triggered alerts, which the live feed delivers to every connection of theirs."""
    return f"{PREFIX}:stream:alerts:{user_id}"


def channels_of(event: AnyEvent) -> tuple[Channel, ...]:
    """The channels whose per-instrument streams carry this event (empty for feed status and
    alerts, which have streams of their own)."""
    if isinstance(event, FeedStatus | AlertTriggered):
        return ()
    return _CHANNEL_OF[type(event)]


def rate_limit_key(bucket: str, subject: str) -> str:
    """One sliding-window log of attempts: ``finone:auth:rate:login-account:<digest>``."""
    return f"{PREFIX}:auth:rate:{bucket}:{subject}"


def live_connections_key(user_id: str) -> str:
    """The user's open live-feed connections on every gateway replica: a sorted set of leases,
    each scored by when it lapses."""
    return f"{PREFIX}:live:connections:{user_id}"


def revoked_session_key(session_id: str) -> str:
    """A logged-out session: its access tokens stop working before they expire."""
    return f"{PREFIX}:auth:revoked-session:{session_id}"


def session_version_key(user_id: str) -> str:
    """The user's current session version; access tokens carrying an older one are revoked."""
    return f"{PREFIX}:auth:session-version:{user_id}"


def revoked_client_key(client_id: str) -> str:
    return f"{PREFIX}:auth:revoked-client:{client_id}"


# Pub/sub channel: each revocation is said here, so that every gateway replica closes the live
# connections it ended at once instead of when their tokens expire.
REVOCATIONS_CHANNEL = f"{PREFIX}:auth:revocations"
