"""Capture files: raw exchange traffic, one event per line, for replay.

The format is the one of the recordings in ``../shared/captures`` (cryptofeed's), so the feed
actors' own recordings and those replay through the same code:

    wss://host/path <-> 1633998511.159679               a connection opened at that unix time
    wss://host/path <- 1652459225.29: {"op":"subscribe"}  a frame the client sent
    1633998512.0633569: {"stream":"...","data":{...}}     a frame received
    https://host/path?query -> 1633998512.32: {...}       a REST reply (``*.http.*``, ``*.0``)
    configuration: {...}                                  what was subscribed (ignored on replay)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

__all__ = ["CaptureLine", "read_capture", "CaptureWriter"]

_OPENED = re.compile(r"(?P<url>\S+) <-> (?P<ts>[0-9.]+)$")
_SENT = re.compile(r"(?P<url>\S+) <- (?P<ts>[0-9.]+): (?P<text>.*)$", re.DOTALL)
_REST = re.compile(r"(?P<url>\S+) -> (?P<ts>[0-9.]+): (?P<text>.*)$", re.DOTALL)
_RECEIVED = re.compile(r"(?P<ts>[0-9]+(?:\.[0-9]*)?): (?P<text>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class CaptureLine:
    kind: Literal["opened", "sent", "received", "rest"]
    timestamp_ns: int
    text: str = ""
    url: str = ""


def _ns(seconds: str) -> int:
    whole, _, fraction = seconds.partition(".")
    return int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])


def parse_line(line: str) -> CaptureLine | None:
    """One line of a capture; None for lines that are not traffic (configuration, blanks)."""
    line = line.rstrip("\n")
    if not line or line.startswith("configuration: "):
        return None
    if match := _RECEIVED.match(line):
        return CaptureLine("received", _ns(match["ts"]), match["text"])
    if match := _OPENED.match(line):
        return CaptureLine("opened", _ns(match["ts"]), url=match["url"])
    if match := _SENT.match(line):
        return CaptureLine("sent", _ns(match["ts"]), match["text"], match["url"])
    if match := _REST.match(line):
        return CaptureLine("rest", _ns(match["ts"]), _strip_headers(match["text"]), match["url"])
    raise ValueError(f"not a capture line: {line[:80]!r}")


def _strip_headers(text: str) -> str:
    # A REST reply may be followed by " header: {json}" on the same line.
    body, sep, _ = text.rpartition(" header: ")
    return body if sep and body.rstrip().endswith(("}", "]")) else text


def read_capture(path: Path) -> Iterator[CaptureLine]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                parsed = parse_line(line)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
            if parsed is not None:
                yield parsed


class CaptureWriter:
    """Appends live traffic to a capture file in the same format (the recording switch)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle: IO[str] | None = path.open("a", encoding="utf-8")

    @staticmethod
    def _seconds(timestamp_ns: int | None) -> str:
        ns = time.time_ns() if timestamp_ns is None else timestamp_ns
        return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"

    def _write(self, line: str) -> None:
        if self._handle is not None:
            self._handle.write(line.replace("\n", " ") + "\n")

    def opened(self, url: str, timestamp_ns: int | None = None) -> None:
        self._write(f"{url} <-> {self._seconds(timestamp_ns)}")

    def sent(self, url: str, text: str, timestamp_ns: int | None = None) -> None:
        self._write(f"{url} <- {self._seconds(timestamp_ns)}: {text}")

    def received(self, text: str, timestamp_ns: int | None = None) -> None:
        self._write(f"{self._seconds(timestamp_ns)}: {text}")

    def rest(self, url: str, body: str, timestamp_ns: int | None = None) -> None:
        self._write(f"{url} -> {self._seconds(timestamp_ns)}: {body}")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
