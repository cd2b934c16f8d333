"""Champion forecasters for the serve tests: trained small and fast on the bundled history,
logged, registered and signed in the session's MLflow server as the platform's own training
does; and instruments with bars to forecast from, copied from that history."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg
import mlflow
import pandas as pd
from mlflow import MlflowClient

from cluster.sample_data import load_sample_bars
from core.intervals import INTERVAL_NS, Interval
from core.model_signing import signing_key
from core.settings import Settings
from training.datasets import load_dataset
from training.registry import ForecastSpec, log_forecaster, model_name, sign_version
from training.trainer import TrainConfig, fit

__all__ = [
    "Champions",
    "INSTRUMENTS",
    "RETURNS",
    "VOLATILITY",
    "copy_of_ibm",
    "register_champions",
    "register_signed",
    "register_version",
    "signed_in",
]

INSTRUMENTS = ("alpaca:IBM", "alpaca:MSFT")
RETURNS, VOLATILITY = model_name("returns", "1d"), model_name("volatility", "1d")


@dataclass(frozen=True, slots=True)
class Champions:
    tracking_uri: str
    returns_version: str
    volatility_version: str


async def register_champions(
    settings: Settings, tracking_uri: str, interval: Interval = "1d"
) -> Champions:
    """Both targets' champions of ``interval``, read by the platform as forecasting from bars of
    that interval (the bundled daily history trains them all: small and fast)."""
    assert settings.database_url
    await load_sample_bars(settings.database_url, tuple(i.split(":")[1] for i in INSTRUMENTS))
    uri = await register_version(
        settings, tracking_uri, TrainConfig(epochs=1, width=8, depth=1), interval
    )
    with signed_in(settings):
        client = MlflowClient(tracking_uri)
        versions = []
        for name in (model_name("returns", interval), model_name("volatility", interval)):
            version = register_signed(settings, tracking_uri, uri, name)
            client.set_registered_model_alias(name, "champion", version)
            versions.append(version)
    return Champions(tracking_uri, *versions)


def register_signed(settings: Settings, tracking_uri: str, uri: str, name: str) -> str:
    """Register ``uri`` as a version of ``name`` signed with the key of ``settings``' secret."""
    mlflow.set_tracking_uri(tracking_uri)
    version = str(mlflow.register_model(uri, name).version)
    key = signing_key(settings.secret_key.get_secret_value())
    sign_version(MlflowClient(tracking_uri), name, version, key)
    return version


@contextmanager
def signed_in(settings: Settings) -> Iterator[None]:
    """MLflow's client signed in as the service account ``settings`` names (a stack's own,
    beside the session's), put back as it was after."""
    before = {name: os.environ.get(name) for name in settings.mlflow_client_env}
    os.environ.update(settings.mlflow_client_env)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


async def register_version(
    settings: Settings, tracking_uri: str, config: TrainConfig, interval: Interval = "1d"
) -> str:
    """Fit ``config`` on the pooled daily history and log it as a forecaster of ``interval``
    bars; returns the logged model's URI."""
    assert settings.database_url
    table = await load_dataset(settings.database_url, list(INSTRUMENTS), "1d")
    spec = ForecastSpec(interval=interval, horizon=1, vol_horizon=5, instruments=INSTRUMENTS)
    with signed_in(settings):
        return await asyncio.to_thread(_fit_and_log, table, spec, config, tracking_uri)


def _fit_and_log(
    table: pd.DataFrame, spec: ForecastSpec, config: TrainConfig, tracking_uri: str
) -> str:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(f"serve-tests-{uuid.uuid4().hex[:8]}")
    train, valid = table.iloc[:-300], table.iloc[-290:]
    fitted = fit(train, valid, config)
    with mlflow.start_run():
        return log_forecaster(fitted, spec, valid)


async def copy_of_ibm(
    database_url: str, count: int, intervals: tuple[Interval, ...] = ("1d",)
) -> str:
    """A new instrument holding IBM's latest ``count`` daily bars as bars of each of
    ``intervals``: the same prices and volumes, one interval apart, ending where IBM's history
    ends."""
    instrument = f"test:I{uuid.uuid4().hex[:8].upper()}"
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT open, high, low, close, volume, trade_count, vwap, start_ts_ns FROM bars "
            "WHERE instrument_id = 'alpaca:IBM' AND interval = '1d' "
            "ORDER BY start_ts_ns DESC LIMIT $1",
            count,
        )
        last = rows[0]["start_ts_ns"]
        await conn.executemany(
            "INSERT INTO bars (instrument_id, interval, start_ts_ns, open, high, low, close, "
            "volume, trade_count, vwap) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (instrument, interval, last - back * INTERVAL_NS[interval], *tuple(row)[:7])
                for interval in intervals
                for back, row in enumerate(rows)
            ],
        )
    finally:
        await conn.close()
    return instrument
