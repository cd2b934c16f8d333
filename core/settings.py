"""The platform's one settings object: environment variables prefixed ``FINONE_``, and ``.env``."""

from __future__ import annotations

import math
import string
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import PlatformError
from core.events import MarketChannel
from core.intervals import Interval

__all__ = ["Settings", "DEFAULT_SECRET", "DEFAULT_FEEDS", "MIN_SECRET_BITS", "secret_strength_bits"]

DEFAULT_SECRET = "changethis"
# 32 bytes: the platform secret keys the JWT signing keys' encryption and the model signatures.
MIN_SECRET_BITS = 256
# Below this many different characters a secret is a pattern, however long.
_MIN_DISTINCT = 10
_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase)


def secret_strength_bits(secret: str) -> float:
    """The randomness a secret can hold at most: its length times the bits of each character,
    judged by the kinds of characters it uses (hex digits only: 4 bits; letters, digits and
    punctuation: up to 6.6), and nothing for one of fewer than 10 distinct characters.

    An upper bound, as any estimate from the text alone must be: it refuses the short, the
    repetitive and the typed-by-hand, and passes what ``secrets.token_hex(32)`` or
    ``token_urlsafe(32)`` make."""
    if len(set(secret)) < _MIN_DISTINCT:
        return 0.0
    if set(secret) <= set(string.hexdigits):
        alphabet = 16
    else:
        alphabet = sum(len(c) for c in _CLASSES if set(c) & set(secret))
        if set(secret) - set("".join(_CLASSES)):
            alphabet += len(string.punctuation) + 1
    return len(secret) * math.log2(alphabet)


_DEFAULT_CHANNELS: tuple[MarketChannel, ...] = ("trades", "quotes", "book")
# The public crypto venues need no keys; a handful of major pairs each.
DEFAULT_FEEDS: dict[str, list[str]] = {
    "binance": ["BTC-USDT", "ETH-USDT", "SOL-USDT"],
    "coinbase": ["BTC-USD", "ETH-USD", "SOL-USD"],
    "kraken": ["BTC-USD", "ETH-USD", "SOL-USD"],
    "okx": ["BTC-USDT", "ETH-USDT", "SOL-USDT"],
}


class Settings(BaseSettings):
    """Everything configurable about one deployment of the platform.

    ``redis_url``, ``database_url`` and ``mlflow_tracking_uri`` also read the conventional
    un-prefixed names; when left unset the local stack starts embedded servers for them.
    """

    model_config = SettingsConfigDict(
        env_prefix="FINONE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".finone")
    host: str = "127.0.0.1"

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("FINONE_REDIS_URL", "REDIS_URL")
    )
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("FINONE_DATABASE_URL", "DATABASE_URL")
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FINONE_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    mlflow_tracking_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "FINONE_MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_USERNAME"
        ),
        description="The platform's MLflow service account; the local stack fills in its own.",
    )
    mlflow_tracking_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "FINONE_MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_PASSWORD"
        ),
    )

    api_port: int = Field(default=8000, ge=1, le=65535)
    redis_port: int = Field(default=6379, ge=1, le=65535)
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    mlflow_port: int = Field(default=5000, ge=1, le=65535)
    ray_port: int = Field(default=6380, ge=1, le=65535)
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    metrics_port: int = Field(default=8080, ge=1, le=65535)
    ingress: Literal["haproxy", "serve"] = Field(
        default="haproxy",
        description="What takes the API's HTTP and WebSocket connections on a Ray head `finone "
        "up` starts: `haproxy` (Ray Serve's HAProxy ingress, replicas answer it directly) or "
        "`serve` (Serve's Python proxy). Nodes started with `ray start` follow "
        "RAY_SERVE_ENABLE_HA_PROXY in their own environment.",
    )

    mlflow_ui_url: str | None = Field(
        default=None,
        description="Where people open the MLflow UI (the web app links it); default: the "
        "tracking server's URL.",
    )
    ray_dashboard_url: str | None = Field(
        default=None,
        description="Where people open the Ray dashboard (the web app links it); `finone up` "
        "fills in its own head's.",
    )
    web_dist: Path = Field(
        default=Path(__file__).resolve().parents[1] / "web" / "dist",
        description="The built web app the gateway serves at / (`make web` builds it).",
    )

    ray_address: str | None = Field(
        default=None,
        description="Join a running Ray cluster (host:port of its GCS) instead of starting a head.",
    )
    ray_num_cpus: int | None = Field(default=None, ge=1)
    skip_components: list[str] = Field(
        default_factory=list,
        description="Components `finone up` leaves to something else (JSON list, e.g. "
        '["serve"] where KubeRay deploys the Serve application).',
    )

    feeds: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_FEEDS),
        description="Venue -> normalized symbols to stream, as JSON in FINONE_FEEDS.",
    )
    feed_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Venue -> WebSocket URL replacing the venue's own (testnets, proxies); JSON.",
    )
    feed_channels: list[MarketChannel] = Field(default_factory=lambda: list(_DEFAULT_CHANNELS))
    alpaca_key_id: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("FINONE_ALPACA_KEY_ID", "APCA_API_KEY_ID")
    )
    alpaca_secret_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FINONE_ALPACA_SECRET_KEY", "APCA_API_SECRET_KEY"),
    )
    alpaca_feed: Literal["iex", "sip", "delayed_sip"] = "iex"
    alpaca_symbols: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT", "SPY"])
    stream_maxlen: int = Field(default=100_000, ge=1_000)
    demo: bool = Field(
        default=False,
        description="Instead of live feeds: the bundled stock history, loaded into the bars "
        "table and replayed as a feed, and a simulated crypto exchange; the first retraining "
        "starts at once on that history, with the demo's quick search.",
    )
    demo_pace_s: float = Field(
        default=1.0, gt=0, description="Seconds per trading day in the demo (it plays once)."
    )
    demo_retrain_samples: int = Field(
        default=4, ge=1, description="Tune trials of a retraining in the demo."
    )
    demo_retrain_epochs: int = Field(
        default=5, ge=1, description="The most epochs per trial of a retraining in the demo."
    )
    record_feeds: bool = False

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)

    jwt_issuer: str = "finone"
    jwt_audience: str = "finone-api"
    access_token_ttl_s: int = Field(default=900, ge=60, le=3600)
    refresh_token_lifetime_s: int = Field(
        default=30 * 86_400, ge=3_600, description="Absolute lifetime of one login session."
    )
    refresh_idle_s: int = Field(
        default=7 * 86_400, ge=600, description="A login session not refreshed this long ends."
    )
    signing_key_rotation_s: int = Field(
        default=30 * 86_400, ge=3_600, description="Age at which the JWT signing key is replaced."
    )
    # argon2id cost; OWASP's first recommended profile (19 MiB, 2 passes, 1 lane) by default.
    password_hash_memory_kib: int = Field(default=19_456, ge=19_456)
    password_hash_time_cost: int = Field(default=2, ge=1)
    password_hash_parallelism: int = Field(default=1, ge=1)
    login_failures_per_account: int = Field(default=10, ge=1)
    login_failure_window_s: int = Field(default=900, ge=1)
    auth_requests_per_ip: int = Field(default=30, ge=1)
    auth_request_window_s: int = Field(default=60, ge=1)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Peer addresses whose X-Forwarded-For names the real client (load balancers).",
    )
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8000", "http://127.0.0.1:8000"],
        description="Browser origins allowed by CORS and on the WebSocket handshake.",
    )
    max_request_bytes: int = Field(default=262_144, ge=1_024)
    retrain_instruments: list[str] = Field(
        default_factory=lambda: ["alpaca:AAPL", "alpaca:GOOG", "alpaca:IBM", "alpaca:MSFT"],
        description="Instruments the retrain scheduler trains on, pooled.",
    )
    retrain_intervals: list[Interval] = Field(
        default=["1d"],
        min_length=1,
        description="Bar lengths retrained and forecast, each with champions of its own; "
        "1s and 1m bars are the recorder's, from live trades.",
    )
    retrain_every_s: float = Field(default=86_400.0, gt=0)
    retrain_min_new_bars: int = Field(default=500, ge=1)
    retrain_samples: int = Field(default=8, ge=1)
    retrain_epochs: int = Field(default=15, ge=1)
    retrain_cpus_per_trial: float = Field(
        default=1.0, gt=0, description="CPUs each Tune trial holds (its PyTorch threads too)."
    )
    champion_poll_s: float = Field(
        default=10.0, gt=0, description="How often inference checks whether `champion` moved."
    )
    prediction_publish_s: float = Field(
        default=30.0, gt=0, description="How often fresh forecasts go to the live feed."
    )
    prediction_batch_size: int = Field(
        default=16, ge=1, description="Forecast requests one inference batch may hold."
    )
    prediction_batch_wait_s: float = Field(
        default=0.005, ge=0, description="How long a batch waits to fill before it runs."
    )
    live_max_subscriptions: int = Field(
        default=500, ge=1, description="Streams one live-feed connection may subscribe to."
    )
    live_max_connections_per_user: int = Field(default=10, ge=1)
    live_conflate_at: int = Field(
        default=2_000,
        ge=10,
        description="Queued events at which a client's quotes and books conflate.",
    )
    live_max_queue: int = Field(
        default=20_000,
        ge=100,
        description="Queued events at which a client that cannot keep up is cut.",
    )
    live_heartbeat_s: float = Field(default=15.0, gt=0)
    live_window_frames: int = Field(
        default=64, ge=1, description="Live-feed data frames a client may leave unacknowledged."
    )
    admin_password: SecretStr | None = Field(
        default=None, description="Password `finone create-admin` uses instead of prompting (CI)."
    )

    startup_timeout_s: float = Field(default=120.0, gt=0)
    health_timeout_s: float = Field(default=2.0, gt=0)
    embedded_restart_delay_s: float = Field(default=5.0, ge=0)

    @field_validator("retrain_intervals")
    @classmethod
    def _distinct_intervals(cls, value: list[Interval]) -> list[Interval]:
        if len(set(value)) != len(value):
            raise ValueError(f"FINONE_RETRAIN_INTERVALS names an interval twice: {value}")
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _require_tracking_server(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("MLFLOW_TRACKING_URI must be the http(s) URL of a tracking server")
        return value

    @model_validator(mode="after")
    def _refuse_weak_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET:
            raise ValueError(
                f"FINONE_SECRET_KEY is still {DEFAULT_SECRET!r}; "
                "set a real secret outside development"
            )
        if secret_strength_bits(secret) < MIN_SECRET_BITS:
            raise ValueError(
                f"FINONE_SECRET_KEY is too weak outside development: it needs {MIN_SECRET_BITS} "
                "bits of randomness, e.g. python3 -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return self

    @property
    def required_redis_url(self) -> str:
        return _resolved(self.redis_url, "REDIS_URL")

    @property
    def required_database_url(self) -> str:
        return _resolved(self.database_url, "DATABASE_URL")

    @property
    def required_mlflow_tracking_uri(self) -> str:
        return _resolved(self.mlflow_tracking_uri, "MLFLOW_TRACKING_URI")

    @property
    def mlflow_client_env(self) -> dict[str, str]:
        """The service account as MLflow's client reads it: from the environment of the process
        (and of the Ray workers it starts) that talks to the tracking server."""
        if self.mlflow_tracking_username is None or self.mlflow_tracking_password is None:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": self.mlflow_tracking_username,
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_tracking_password.get_secret_value(),
        }

    @property
    def capture_dir(self) -> Path:
        """Where feed recordings go when recording is switched on."""
        return self.data_path / "captures"

    @property
    def data_path(self) -> Path:
        """The data directory as an absolute path, so child processes agree on it."""
        return self.data_dir.expanduser().resolve()


def _resolved(url: str | None, name: str) -> str:
    # Deployment reads service URLs only after the local stack has filled in the unset ones.
    if url is None:
        raise PlatformError(f"{name} is not set and no local stack has resolved it")
    return url
