"""Alerts in Postgres: the one place their SQL lives (REST routes and the evaluator use it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from actors.alert_engine import AlertRule, Condition

__all__ = [
    "StoredAlert",
    "create_alert",
    "list_alerts",
    "count_waiting",
    "delete_alert",
    "waiting_rules",
    "mark_triggered",
]

_COLUMNS = (
    "alert_id::text, instrument_id, condition, threshold, window_s, created_at, triggered_at, "
    "triggered_price"
)


@dataclass(frozen=True, slots=True)
class StoredAlert:
    alert_id: str
    instrument_id: str
    condition: Condition
    threshold: Decimal
    window_s: int | None
    created_at: datetime
    triggered_at: datetime | None
    triggered_price: Decimal | None


def _alert(row: asyncpg.Record) -> StoredAlert:
    return StoredAlert(**{**dict(row), "condition": Condition(row["condition"])})


async def create_alert(
    db: asyncpg.Pool | asyncpg.Connection,
    user_id: str,
    instrument: str,
    condition: Condition,
    threshold: Decimal,
    window_s: int | None,
) -> StoredAlert:
    row = await db.fetchrow(
        f"INSERT INTO alerts (user_id, instrument_id, condition, threshold, window_s) "
        f"VALUES ($1::uuid, $2, $3, $4, $5) RETURNING {_COLUMNS}",
        user_id,
        instrument,
        condition.value,
        threshold,
        window_s,
    )
    return _alert(row)


async def list_alerts(
    pool: asyncpg.Pool,
    user_id: str,
    fired: bool | None,
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> list[StoredAlert]:
    """Up to ``limit`` of the user's alerts, newest first: waiting ones (``fired`` False), fired
    ones (True) or both (None), created before ``before`` (created_at, alert_id) if given."""
    created_at, alert_id = before if before is not None else (None, None)
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM alerts WHERE user_id = $1::uuid "
        "AND ($2::boolean IS NULL OR (triggered_at IS NOT NULL) = $2) "
        "AND ($3::timestamptz IS NULL OR (created_at, alert_id) < ($3, $4::uuid)) "
        "ORDER BY created_at DESC, alert_id DESC LIMIT $5",
        user_id,
        fired,
        created_at,
        alert_id,
        limit,
    )
    return [_alert(row) for row in rows]


async def count_waiting(db: asyncpg.Pool | asyncpg.Connection, user_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM alerts WHERE user_id = $1::uuid AND triggered_at IS NULL", user_id
    )
    return count


async def delete_alert(pool: asyncpg.Pool, user_id: str, alert_id: str) -> bool:
    status: str = await pool.execute(
        "DELETE FROM alerts WHERE alert_id = $1::uuid AND user_id = $2::uuid", alert_id, user_id
    )
    return status != "DELETE 0"


async def waiting_rules(pool: asyncpg.Pool) -> list[AlertRule]:
    """Every alert that has not fired yet, as the engine evaluates them."""
    rows = await pool.fetch(
        "SELECT alert_id::text, user_id::text, instrument_id, condition, threshold, window_s "
        "FROM alerts WHERE triggered_at IS NULL"
    )
    return [
        AlertRule(
            alert_id=row["alert_id"],
            user_id=row["user_id"],
            instrument=row["instrument_id"],
            condition=Condition(row["condition"]),
            threshold=row["threshold"],
            window_s=row["window_s"],
        )
        for row in rows
    ]


async def mark_triggered(pool: asyncpg.Pool, alert_id: str, price: Decimal) -> bool:
    """Spend the alert; False when it was already spent or deleted (it must not fire twice)."""
    status: str = await pool.execute(
        "UPDATE alerts SET triggered_at = now(), triggered_price = $2 "
        "WHERE alert_id = $1::uuid AND triggered_at IS NULL",
        alert_id,
        price,
    )
    return status != "UPDATE 0"
