"""Price alerts: per user, evaluated on the live stream, spent once they fire."""

from alembic import op

revision = "0004"
down_revision = "0003"

UPGRADE = [
    """
    CREATE TABLE alerts (
        alert_id        UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id         UUID NOT NULL REFERENCES users ON DELETE CASCADE,
        instrument_id   TEXT NOT NULL,
        condition       TEXT NOT NULL
                        CHECK (condition IN ('crosses_above', 'crosses_below', 'percent_move')),
        threshold       NUMERIC NOT NULL CHECK (threshold > 0),
        window_s        INTEGER CHECK (window_s BETWEEN 1 AND 86400),
        created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
        triggered_at    TIMESTAMPTZ,
        triggered_price NUMERIC,
        CHECK ((condition = 'percent_move') = (window_s IS NOT NULL))
    )
    """,
    "CREATE INDEX alerts_waiting ON alerts (instrument_id) WHERE triggered_at IS NULL",
    "CREATE INDEX alerts_by_user ON alerts (user_id, created_at)",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE alerts")
