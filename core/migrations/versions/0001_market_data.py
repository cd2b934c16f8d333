"""Market data: instruments, trades and OHLCV bars.

Prices and sizes are NUMERIC so they stay exactly as the exchange wrote them; times are integer
nanoseconds since the epoch (UTC). Primary keys make the recorder's writes idempotent.
"""

from alembic import op

revision = "0001"
down_revision = None

UPGRADE = [
    """
    CREATE TABLE instruments (
        instrument_id TEXT PRIMARY KEY,
        venue         TEXT NOT NULL,
        symbol        TEXT NOT NULL,
        asset_class   TEXT NOT NULL CHECK (asset_class IN ('crypto', 'stock')),
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (venue, symbol)
    )
    """,
    """
    CREATE TABLE trades (
        instrument_id  TEXT    NOT NULL,
        trade_id       TEXT    NOT NULL,
        exchange_ts_ns BIGINT  NOT NULL,
        receive_ts_ns  BIGINT  NOT NULL,
        price          NUMERIC NOT NULL CHECK (price > 0),
        size           NUMERIC NOT NULL CHECK (size > 0),
        side           TEXT    CHECK (side IN ('buy', 'sell')),
        PRIMARY KEY (instrument_id, trade_id)
    )
    """,
    "CREATE INDEX trades_by_time ON trades (instrument_id, exchange_ts_ns)",
    """
    CREATE TABLE bars (
        instrument_id TEXT    NOT NULL,
        interval      TEXT    NOT NULL,
        start_ts_ns   BIGINT  NOT NULL,
        open          NUMERIC NOT NULL,
        high          NUMERIC NOT NULL,
        low           NUMERIC NOT NULL,
        close         NUMERIC NOT NULL,
        volume        NUMERIC NOT NULL CHECK (volume >= 0),
        trade_count   BIGINT  NOT NULL CHECK (trade_count >= 0),
        vwap          NUMERIC,
        PRIMARY KEY (instrument_id, interval, start_ts_ns),
        CHECK (low <= high AND low <= open AND low <= close AND high >= open AND high >= close)
    )
    """,
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for table in ("bars", "trades", "instruments"):
        op.execute(f"DROP TABLE {table}")
