"""Redis stream entry ids (``<milliseconds>-<sequence>``): their order, and how far behind the
publishers a reader of the streams is."""

from __future__ import annotations

import time

from core.redis_replies import StreamReads

__all__ = ["parse_id", "read_lag_s"]


def parse_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def read_lag_s(replies: StreamReads) -> float:
    """How far behind the publishers an XREAD is: the age of the newest entry it returned (a
    stream's entries come oldest first); 0 for a read that found nothing new."""
    if not replies:
        return 0.0
    newest_ms = max(parse_id(entries[-1][0].decode())[0] for _, entries in replies)
    return time.time() - newest_ms / 1000
