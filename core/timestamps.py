"""Exchange timestamps to the schema's integer nanoseconds since the epoch (UTC), exactly.

Floats cannot hold today's times to a nanosecond, so nothing here goes through one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

__all__ = ["rfc3339_ns"]

_SECONDS = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})")
_FRACTION_AND_ZONE = re.compile(r"(?:\.([0-9]+))?(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4_096)
def _epoch_seconds(prefix: str) -> int:
    # Consecutive stamps mostly share their second: the calendar work is done once per second.
    match = _SECONDS.fullmatch(prefix)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {prefix!r}")
    year, month, day, hour, minute, second = map(int, match.groups())
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)  # validates the ranges
    return (moment - _EPOCH) // _ONE_SECOND


_ONE_SECOND = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC) - _EPOCH


@lru_cache(maxsize=1_024)
def rfc3339_ns(text: str) -> int:
    """``2024-01-02T14:30:00.123456789Z`` (any fraction, ``Z`` or a ``±HH:MM`` offset) in ns.

    Digits past the ninth are below a nanosecond and are truncated. Cached: the levels of one
    book update, and the messages of one frame, repeat the same stamp.
    """
    seconds = _epoch_seconds(text[:19])
    rest = text[19:]
    if rest == "Z":
        return seconds * 1_000_000_000
    match = _FRACTION_AND_ZONE.fullmatch(rest)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    fraction, sign, offset_hours, offset_minutes = match.groups()
    if sign is not None:
        hours, minutes = int(offset_hours), int(offset_minutes)
        if hours > 23 or minutes > 59:
            raise ValueError(f"not an RFC 3339 offset: {text!r}")
        offset = hours * 3_600 + minutes * 60
        seconds += -offset if sign == "+" else offset
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    return seconds * 1_000_000_000 + nanos
