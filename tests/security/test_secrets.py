"""The platform secret outside development: nothing a person could guess is accepted."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from core.settings import DEFAULT_SECRET, Settings

GUESSABLE = [
    "",
    "x",
    DEFAULT_SECRET,
    "hunter2",
    "correct horse battery staple",
    "k" * 64,
    "0123456789abcdef" * 2,
    secrets.token_hex(16),
]


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", GUESSABLE)
def test_a_guessable_secret_is_refused_outside_development(secret: str, environment: str) -> None:
    with pytest.raises(ValidationError, match="FINONE_SECRET_KEY"):
        Settings(environment=environment, secret_key=secret)


@pytest.mark.parametrize("secret", [secrets.token_hex(32), secrets.token_urlsafe(32)])
def test_a_generated_secret_of_32_bytes_is_accepted(secret: str) -> None:
    assert Settings(environment="production", secret_key=secret).secret_key.get_secret_value()


def test_development_keeps_working_without_one() -> None:
    assert Settings(environment="development", secret_key="").environment == "development"
