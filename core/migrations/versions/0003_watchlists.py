"""Watchlists: named lists of instruments per user, subscribable on the live feed in one message."""

from alembic import op

revision = "0003"
down_revision = "0002"

UPGRADE = [
    """
    CREATE TABLE watchlists (
        watchlist_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id      UUID NOT NULL REFERENCES users ON DELETE CASCADE,
        name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        instruments  TEXT[] NOT NULL,
        created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (user_id, name)
    )
    """,
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE watchlists")
