"""Opaque cursors for paginated lists: the client hands back ``next_cursor`` unchanged."""

from __future__ import annotations

import base64
import binascii
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from serve.errors import ApiError

__all__ = ["Page", "encode_cursor", "decode_cursor"]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as cursor for the next page; null on the last one.",
        examples=["YW5uQGV4YW1wbGUuY29t"],
    )


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned") from None
