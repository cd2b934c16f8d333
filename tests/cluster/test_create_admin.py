"""`finone create-admin`: the first admin comes from the command line, never over the API."""

from __future__ import annotations

import asyncio

import asyncpg
from click.testing import CliRunner

from cluster.cli import main

PASSWORD = "an admin passphrase of some length"


def _run(database_url: str, *args: str, password: str | None = PASSWORD, prompt: str | None = None):  # type: ignore[no-untyped-def]
    env = {"DATABASE_URL": database_url, "FINONE_ADMIN_PASSWORD": password}
    return CliRunner().invoke(main, ["create-admin", *args], env=env, input=prompt)


def _role(database_url: str, email: str) -> tuple[str, str] | None:
    async def query() -> tuple[str, str] | None:
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow(
                "SELECT role, password_hash FROM users WHERE email = $1", email
            )
        finally:
            await conn.close()
        return None if row is None else (row["role"], row["password_hash"])

    return asyncio.run(query())


def test_create_admin_with_password_from_env_creates_an_argon2id_admin(database_url: str) -> None:
    result = _run(database_url, "--email", "Root@Example.com")

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created admin root@example.com"
    stored = _role(database_url, "root@example.com")
    assert stored is not None
    role, password_hash = stored
    assert role == "admin"
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash


def test_create_admin_twice_says_so_and_changes_nothing(database_url: str) -> None:
    _run(database_url, "--email", "ops@example.com")
    before = _role(database_url, "ops@example.com")

    result = _run(database_url, "--email", "ops@example.com", password="a different passphrase")

    assert result.exit_code == 0
    assert "already an admin" in result.output
    assert _role(database_url, "ops@example.com") == before


def test_create_admin_prompts_for_the_password_when_not_in_env(database_url: str) -> None:
    result = _run(
        database_url,
        "--email",
        "prompted@example.com",
        password=None,
        prompt=f"{PASSWORD}\n{PASSWORD}\n",
    )

    assert result.exit_code == 0, result.output
    assert _role(database_url, "prompted@example.com") is not None


def test_create_admin_refuses_a_weak_password_or_bad_email(database_url: str) -> None:
    weak = _run(database_url, "--email", "weak@example.com", password="password1")
    bad_email = _run(database_url, "--email", "not an email")

    assert weak.exit_code == bad_email.exit_code == 1
    assert "too common" in weak.output
    assert "email" in bad_email.output
    assert _role(database_url, "weak@example.com") is None
