"""Identity and access: users, refresh-token families, signing keys, machine clients, audit log.

Secrets never sit in clear: passwords are argon2id hashes, refresh tokens and client secrets are
SHA-256 digests of high-entropy random values, private signing keys are encrypted with a key
derived from FINONE_SECRET_KEY.
"""

from alembic import op

revision = "0002"
down_revision = "0001"

UPGRADE = [
    """
    CREATE TABLE users (
        user_id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
        email            TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
        password_hash    TEXT NOT NULL,
        role             TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'operator', 'admin')),
        disabled         BOOLEAN NOT NULL DEFAULT false,
        -- Bumped whenever every outstanding access token of the user must stop working.
        session_version  INTEGER NOT NULL DEFAULT 0,
        created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
        password_changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE refresh_tokens (
        token_hash        BYTEA PRIMARY KEY,
        family_id         UUID NOT NULL,
        user_id           UUID NOT NULL REFERENCES users ON DELETE CASCADE,
        issued_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
        family_expires_at TIMESTAMPTZ NOT NULL,
        used_at           TIMESTAMPTZ,
        revoked_at        TIMESTAMPTZ
    )
    """,
    "CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id)",
    "CREATE INDEX refresh_tokens_live_by_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL",
    """
    CREATE TABLE signing_keys (
        kid                   TEXT PRIMARY KEY,
        algorithm             TEXT NOT NULL,
        public_jwk            JSONB NOT NULL,
        private_jwk_encrypted BYTEA NOT NULL,
        created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
        retired_at            TIMESTAMPTZ
    )
    """,
    """
    CREATE TABLE oauth_clients (
        client_id   TEXT PRIMARY KEY,
        owner_id    UUID NOT NULL REFERENCES users ON DELETE CASCADE,
        name        TEXT NOT NULL,
        secret_hash BYTEA NOT NULL,
        scopes      TEXT[] NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        revoked_at  TIMESTAMPTZ
    )
    """,
    "CREATE INDEX oauth_clients_by_owner ON oauth_clients (owner_id)",
    """
    CREATE TABLE audit_events (
        event_id   BIGSERIAL PRIMARY KEY,
        at         TIMESTAMPTZ NOT NULL DEFAULT now(),
        event      TEXT NOT NULL,
        user_id    UUID,
        actor_id   UUID,
        client_ip  TEXT,
        details    JSONB NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX audit_events_by_user ON audit_events (user_id, event_id)",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for table in ("audit_events", "oauth_clients", "signing_keys", "refresh_tokens", "users"):
        op.execute(f"DROP TABLE {table}")
