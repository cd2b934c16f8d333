"""Cursors of paginated lists: the client hands back ``next_cursor`` unchanged.

A cursor is the position of the last item of a page, written so that the schema can say what a
cursor looks like and every string of that shape is a position: numbers as digits, text as the
hex of its UTF-8 bytes. A client that edits one gets another position, never an error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

__all__ = [
    "Page",
    "NUMBER",
    "TEXT",
    "UUID_HEX",
    "cursor_pattern",
    "cursor_parts",
    "join_cursor",
    "number_at",
    "text_of",
    "text_at",
    "time_of",
    "time_at",
]

T = TypeVar("T")

# The pieces a cursor is made of, as regular expressions.
NUMBER = "[0-9]{1,19}"
# One to 1,024 bytes, none of them NUL (a Postgres text cannot hold it).
TEXT = "(?:0[1-9a-f]|[1-9a-f][0-9a-f]){1,1024}"
UUID_HEX = "[0-9a-f]{32}"
_SEPARATOR = "-"
_INT64_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST_MICROSECOND = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as cursor for the next page; null on the last one.",
        examples=["616e6e406578616d706c652e636f6d"],
    )


def cursor_pattern(*pieces: str) -> str:
    """The pattern of a cursor made of ``pieces`` joined by ``-``."""
    return "^" + _SEPARATOR.join(pieces) + "$"


def cursor_parts(cursor: str, count: int) -> list[str]:
    return cursor.split(_SEPARATOR, count - 1)


def number_at(digits: str) -> int:
    """A number piece; one past what Postgres' bigint holds is the end of everything."""
    return min(int(digits), _INT64_MAX)


def text_of(text: str) -> str:
    return text.encode().hex()


def text_at(piece: str) -> str:
    return bytes.fromhex(piece).decode("utf-8", "replace")


def time_of(moment: datetime) -> str:
    return str((moment - _EPOCH) // timedelta(microseconds=1))


def time_at(digits: str) -> datetime:
    return _EPOCH + timedelta(microseconds=min(int(digits), _LAST_MICROSECOND))


def join_cursor(*pieces: str) -> str:
    return _SEPARATOR.join(pieces)
