"""The Redis replies the platform reads, typed as its clients receive them.

redis-py types each reply for every protocol and decoding a client may be set up with (RESP2 or
RESP3, bytes or str). The platform's clients all keep the defaults, RESP2 and undecoded bytes:
a stream entry is then (id, fields) in bytes, and an XREAD or XREADGROUP reply a list of (stream
key, entries). These functions give replies those types, the one place that relies on it.
"""

from __future__ import annotations

from typing import cast

from redis.typing import StreamRangeResponse, XReadGroupResponse, XReadResponse, ZSetRangeResponse

__all__ = [
    "StreamEntry",
    "StreamEntries",
    "StreamReads",
    "stream_entries",
    "stream_reads",
    "hash_values",
    "set_members",
]

StreamEntry = tuple[bytes, dict[bytes, bytes]]
StreamEntries = list[StreamEntry]
# Each stream that had entries to give, with its entries oldest first.
StreamReads = list[tuple[bytes, StreamEntries]]


def stream_entries(reply: StreamRangeResponse | None) -> StreamEntries:
    """XRANGE, XREVRANGE."""
    return cast(StreamEntries, reply)


def stream_reads(reply: XReadResponse | XReadGroupResponse) -> StreamReads:
    """XREAD, XREADGROUP."""
    return cast(StreamReads, reply)


def hash_values(reply: list[bytes | str | None]) -> list[bytes | None]:
    """HMGET or MGET: each field's (key's) value, None for one that is missing."""
    return cast(list[bytes | None], reply)


def set_members(reply: ZSetRangeResponse) -> list[bytes]:
    """ZRANGE without scores."""
    return cast(list[bytes], reply)
