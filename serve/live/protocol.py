"""The live feed's messages. Clients send JSON objects tagged by ``type``; the server answers
with ``data`` (several events per frame), ``subscribed``/``unsubscribed`` acks, ``error``,
``heartbeat``, ``pong`` and ``gap`` notices.

A stream is ``<channel>:<instrument>`` (``trades:okx:BTC-USDT``), or ``alerts``: the user's own
triggered alerts, which every connection receives without asking. The model channels
(``predictions``, ``insights``) have a stream per bar interval a subscription names in
``intervals`` (daily by default): daily ones named as above, the others
``<channel>:<interval>:<instrument>`` (``predictions:1m:okx:BTC-USDT``; see
``core.redis_keys.InstrumentStream``). Every event sent carries its stream and the stream's
event id, which is what ``resume_from`` takes back after a reconnect.

Flow control: data frames are numbered (``seq``) and at most a window of them is in flight
unacknowledged; a client acknowledges with ``{"type": "ack", "seq": N}`` for the last frame it
has processed (every few frames is enough). Serve's proxy buffers whatever a replica sends, so
only the client can say that it keeps up; one that does not ack is treated as slow: its quotes
and books are conflated to the latest, then it is disconnected (close code 4008). Catch-up
(``resume_from``) is paced the same way, and each stream can be resumed once per subscription.

Close codes: 4401 the token expired or was refused, 4403 forbidden (both from
``serve.live.handshake``), 4001 the token was revoked while the connection was open (logout,
logout everywhere, password change, disable, role change, machine client revoked: reconnecting
needs a new login or client token), 4008 too slow, 4029 too many connections, 1008 too many
refused messages (each refusal is an ``error``; an oversized message weighs by its size), 1013
try again later (the server cannot check tokens now, or too many handshakes are pending from
the client's address).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

import msgspec

from core.events import CHANNELS, MODEL_CHANNELS, Channel
from core.intervals import Interval
from core.redis_keys import InstrumentStream

__all__ = [
    "Subscribe",
    "Unsubscribe",
    "Ping",
    "Ack",
    "Auth",
    "ClientMessage",
    "decode_client_message",
    "streams_of",
    "stream_named",
    "EVENT_ID",
    "ALERTS_STREAM",
    "server_message",
    "CLOSE_TOO_SLOW",
    "CLOSE_TOO_MANY_CONNECTIONS",
    "CLOSE_REVOKED",
    "CLOSE_POLICY_VIOLATION",
]

EVENT_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
ALERTS_STREAM = "alerts"
_INSTRUMENT = re.compile(r"[a-z0-9_]{1,32}:[A-Za-z0-9._/-]{1,48}")
# The feeds' channels have one stream per instrument, whatever the interval.
_DAILY: list[Interval] = ["1d"]


class Subscribe(msgspec.Struct, tag="subscribe", forbid_unknown_fields=True):
    instruments: list[str] = []
    watchlist: str | None = None
    channels: list[Channel] = msgspec.field(default_factory=lambda: ["trades", "quotes"])
    # The bar intervals of the forecasts and insights wanted (the model channels only).
    intervals: list[Interval] = msgspec.field(default_factory=lambda: ["1d"])
    # stream -> the last event id the client saw there; it gets everything after it.
    resume_from: dict[str, str] = {}


class Unsubscribe(msgspec.Struct, tag="unsubscribe", forbid_unknown_fields=True):
    instruments: list[str] = []
    watchlist: str | None = None
    channels: list[Channel] = msgspec.field(default_factory=lambda: list(CHANNELS))
    intervals: list[Interval] = msgspec.field(default_factory=lambda: list(get_args(Interval)))


class Ping(msgspec.Struct, tag="ping", forbid_unknown_fields=True):
    pass


class Ack(msgspec.Struct, tag="ack", forbid_unknown_fields=True):
    """Every data frame up to ``seq`` has been processed."""

    seq: int


class Auth(msgspec.Struct, tag="auth", forbid_unknown_fields=True):
    """A fresh access token for the same user, before the current one expires."""

    token: str


ClientMessage = Subscribe | Unsubscribe | Ping | Ack | Auth
_decoder = msgspec.json.Decoder(ClientMessage)


def decode_client_message(text: str | bytes) -> ClientMessage:
    """Raises ValueError with a readable reason for anything that is not a valid message."""
    try:
        message = _decoder.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise ValueError(str(error)) from None
    if isinstance(message, Subscribe | Unsubscribe):
        bad = [i for i in message.instruments if not _INSTRUMENT.fullmatch(i)]
        if bad:
            raise ValueError(f"not instrument ids: {', '.join(bad[:5])}")
    if isinstance(message, Subscribe):
        for stream, event_id in message.resume_from.items():
            known = stream == ALERTS_STREAM or stream_named(stream) is not None
            if not known or not EVENT_ID.fullmatch(event_id):
                raise ValueError(f"resume_from: {stream!r} -> {event_id!r} is not a stream and id")
    return message


def streams_of(
    instruments: list[str], channels: list[Channel], intervals: list[Interval]
) -> list[InstrumentStream]:
    """The streams a (un)subscription names: each channel's of each instrument, the model
    channels' once per interval."""
    channels, intervals = list(dict.fromkeys(channels)), list(dict.fromkeys(intervals))
    return [
        InstrumentStream(channel, instrument, interval)
        for instrument in instruments
        for channel in channels
        for interval in (intervals if channel in MODEL_CHANNELS else _DAILY)
    ]


def stream_named(name: str) -> InstrumentStream | None:
    """The instrument's stream ``name`` names; None for anything else (``alerts`` included)."""
    stream = InstrumentStream.parse(name)
    if stream is None or not _INSTRUMENT.fullmatch(stream.instrument):
        return None
    return stream


_encoder = msgspec.json.Encoder()


ServerKind = Literal[
    "subscribed", "unsubscribed", "authenticated", "error", "heartbeat", "pong", "gap"
]


def server_message(kind: ServerKind, **fields: object) -> str:
    return _encoder.encode({"type": kind, **fields}).decode()


# Close codes of the live feed (4000-4999 belong to applications; 4401/4403 as in
# serve.live.handshake).
CLOSE_TOO_SLOW = 4008
CLOSE_TOO_MANY_CONNECTIONS = 4029
CLOSE_REVOKED = 4001
# The WebSocket protocol's own code for a peer that breaks the rules (RFC 6455, 7.4.1).
CLOSE_POLICY_VIOLATION = 1008
