"""Champion forecasters for the serve tests: trained small and fast on the bundled history,
logged and registered in the session's MLflow server as the platform's own training does."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient

from cluster.settings import Settings
from training.datasets import load_dataset
from training.registry import TARGET_MODELS, ForecastSpec, log_forecaster
from training.sample_data import load_sample_bars
from training.trainer import TrainConfig, fit

__all__ = ["Champions", "INSTRUMENTS", "register_champions", "register_version"]

INSTRUMENTS = ("alpaca:IBM", "alpaca:MSFT")
RETURNS, VOLATILITY = TARGET_MODELS["returns"][0], TARGET_MODELS["volatility"][0]


@dataclass(frozen=True, slots=True)
class Champions:
    tracking_uri: str
    returns_version: str
    volatility_version: str


async def register_champions(settings: Settings, tracking_uri: str) -> Champions:
    assert settings.database_url
    await load_sample_bars(settings.database_url, tuple(i.split(":")[1] for i in INSTRUMENTS))
    uri = await register_version(settings, tracking_uri, TrainConfig(epochs=1, width=8, depth=1))
    client = MlflowClient(tracking_uri)
    versions = []
    for name in (RETURNS, VOLATILITY):
        version = mlflow.register_model(uri, name).version
        client.set_registered_model_alias(name, "champion", version)
        versions.append(str(version))
    return Champions(tracking_uri, *versions)


async def register_version(settings: Settings, tracking_uri: str, config: TrainConfig) -> str:
    """Fit ``config`` on the pooled history and log it; returns the logged model's URI."""
    assert settings.database_url
    table = await load_dataset(settings.database_url, list(INSTRUMENTS), "1d")
    spec = ForecastSpec(interval="1d", horizon=1, vol_horizon=5, instruments=INSTRUMENTS)
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
