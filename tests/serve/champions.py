"""Champion forecasters for the serve tests: trained small and fast on the bundled history,
logged, registered and signed in the session's MLflow server as the platform's own training
does."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient

from cluster.sample_data import load_sample_bars
from core.model_signing import signing_key
from core.settings import Settings
from training.datasets import load_dataset
from training.registry import ForecastSpec, log_forecaster, model_name, sign_version
from training.trainer import TrainConfig, fit

__all__ = [
    "Champions",
    "INSTRUMENTS",
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


async def register_champions(settings: Settings, tracking_uri: str) -> Champions:
    assert settings.database_url
    await load_sample_bars(settings.database_url, tuple(i.split(":")[1] for i in INSTRUMENTS))
    uri = await register_version(settings, tracking_uri, TrainConfig(epochs=1, width=8, depth=1))
    with signed_in(settings):
        client = MlflowClient(tracking_uri)
        versions = []
        for name in (RETURNS, VOLATILITY):
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


async def register_version(settings: Settings, tracking_uri: str, config: TrainConfig) -> str:
    """Fit ``config`` on the pooled history and log it; returns the logged model's URI."""
    assert settings.database_url
    table = await load_dataset(settings.database_url, list(INSTRUMENTS), "1d")
    spec = ForecastSpec(interval="1d", horizon=1, vol_horizon=5, instruments=INSTRUMENTS)
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
