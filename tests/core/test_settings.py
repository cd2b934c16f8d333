from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import DEFAULT_SECRET, Settings


def test_settings_with_default_secret_outside_development_are_refused() -> None:
    with pytest.raises(ValidationError, match="FINONE_SECRET_KEY"):
        Settings(environment="production", secret_key=DEFAULT_SECRET)


def test_settings_with_default_secret_in_development_are_accepted() -> None:
    assert Settings(environment="development").secret_key.get_secret_value() == DEFAULT_SECRET


def test_settings_with_conventional_service_variables_use_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@example/db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example:5000")
    settings = Settings()
    assert settings.redis_url == "redis://example:6379/0"
    assert settings.database_url == "postgresql://u:p@example/db"
    assert settings.mlflow_tracking_uri == "http://example:5000"


def test_settings_with_prefixed_variable_win_over_conventional(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://conventional:6379/0")
    monkeypatch.setenv("FINONE_REDIS_URL", "redis://prefixed:6379/0")
    assert Settings().redis_url == "redis://prefixed:6379/0"


def test_settings_with_file_tracking_uri_are_refused() -> None:
    with pytest.raises(ValidationError, match="tracking server"):
        Settings(mlflow_tracking_uri="file:///tmp/mlruns")


def test_settings_read_dotenv_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("FINONE_API_PORT=9123\n")
    assert Settings().api_port == 9123
