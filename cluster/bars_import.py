"""``finone import-bars``: OHLCV history from CSV or Parquet into the bars table.

The whole file is validated before anything is written, and written in one transaction: a bad
row aborts the import with its row number and nothing changes. Re-importing the same file changes
nothing; importing a corrected file updates the bars it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pandas as pd

from core.errors import PlatformError
from core.events import checked_decimal, instrument_id

__all__ = [
    "BarsFile",
    "read_bars_file",
    "bars_from_frame",
    "write_bars",
    "STOCK_VENUES",
]

STOCK_VENUES = frozenset({"alpaca", "stocks", "nasdaq", "nyse"})
_TIME_COLUMNS = ("timestamp", "datetime", "date", "time")
_REQUIRED = ("open", "high", "low", "close", "volume")
_MAX_REPORTED = 5


@dataclass(frozen=True)
class BarsFile:
    rows: list[tuple[int, str, str, str, str, str, int, str | None]]
    first_ns: int
    last_ns: int


def _load(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
            # Parquet stores numbers; their shortest round-trip spelling is what was written.
            return frame.astype({c: str for c in frame.columns if c.lower() in _REQUIRED})
        # Read as text: prices keep exactly the digits the file has.
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise PlatformError(f"cannot read {path}: {error}") from None


def read_bars_file(path: Path) -> BarsFile:
    return bars_from_frame(_load(path), str(path))


def bars_from_frame(frame: pd.DataFrame, path: str) -> BarsFile:
    """Validate a table of bars (text cells) the way a file is; ``path`` names it in errors."""
    frame = frame.copy()
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    time_column = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if time_column is None or missing:
        wanted = ", ".join(missing + ([] if time_column else ["a date/timestamp column"]))
        raise PlatformError(f"{path} lacks the column(s): {wanted}")
    if frame.empty:
        raise PlatformError(f"{path} has no rows")

    times = pd.to_datetime(frame[time_column], utc=True, errors="coerce")
    problems: list[str] = []
    rows: list[tuple[int, str, str, str, str, str, int, str | None]] = []
    for index, (when, record) in enumerate(zip(times, frame.to_dict("records"), strict=True)):
        if len(problems) >= _MAX_REPORTED:
            break
        line = index + 2  # header is line 1
        if pd.isna(when):
            problems.append(f"row {line}: unreadable time {record[time_column]!r}")
            continue
        try:
            opening, high, low, closing = (
                checked_decimal(str(record[k]).strip()) for k in ("open", "high", "low", "close")
            )
            volume = checked_decimal(str(record["volume"]).strip(), allow_zero=True)
            vwap_text = str(record.get("vwap", "")).strip()
            vwap = checked_decimal(vwap_text) if vwap_text else None
            count = _optional_int(record.get("trade_count") or record.get("trades"))
        except ValueError as error:
            problems.append(f"row {line}: {error}")
            continue
        if (
            not float(low)
            <= min(float(opening), float(closing))
            <= max(float(opening), float(closing))
            <= float(high)
        ):
            problems.append(f"row {line}: open/close outside low..high")
            continue
        rows.append((int(when.value), opening, high, low, closing, volume, count, vwap))
    if problems:
        raise PlatformError(f"{path} has bad rows, nothing imported: " + "; ".join(problems))
    stamps = [r[0] for r in rows]
    if len(set(stamps)) != len(stamps):
        raise PlatformError(f"{path} has several bars for the same time, nothing imported")
    return BarsFile(rows=rows, first_ns=min(stamps), last_ns=max(stamps))


def _optional_int(value: object) -> int:
    text = str(value).strip() if value is not None else ""
    return int(float(text)) if text else 0


async def write_bars(
    database_url: str, venue: str, symbol: str, interval: str, bars: BarsFile
) -> tuple[int, int]:
    """Insert or update the bars; returns (inserted, updated)."""
    instrument = instrument_id(venue, symbol)
    asset_class = "stock" if venue in STOCK_VENUES else "crypto"
    records = [(instrument, interval, *row) for row in bars.rows]
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO instruments (instrument_id, venue, symbol, asset_class) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (instrument_id) DO NOTHING",
                instrument,
                venue,
                symbol,
                asset_class,
            )
            await conn.execute(
                "CREATE TEMP TABLE incoming_bars (LIKE bars INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            await conn.copy_records_to_table(
                "incoming_bars",
                records=records,
                columns=[
                    "instrument_id",
                    "interval",
                    "start_ts_ns",
                    "open",
                    "high",
                    "low",
                    "close",
                    "volume",
                    "trade_count",
                    "vwap",
                ],
            )
            changed = await conn.fetch(
                """
                INSERT INTO bars SELECT * FROM incoming_bars
                ON CONFLICT (instrument_id, interval, start_ts_ns) DO UPDATE SET
                    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
                    close = EXCLUDED.close, volume = EXCLUDED.volume,
                    trade_count = EXCLUDED.trade_count, vwap = EXCLUDED.vwap
                WHERE (bars.open, bars.high, bars.low, bars.close, bars.volume,
                       bars.trade_count, bars.vwap)
                   IS DISTINCT FROM
                      (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
                       EXCLUDED.volume, EXCLUDED.trade_count, EXCLUDED.vwap)
                RETURNING (xmax = 0) AS inserted
                """
            )
    except asyncpg.PostgresError as error:
        raise PlatformError(f"import failed, nothing written: {error}") from None
    finally:
        await conn.close()
    inserted = sum(1 for row in changed if row["inserted"])
    return inserted, len(changed) - inserted
