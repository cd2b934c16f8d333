"""Inference loads only the versions the platform signed: a ``champion`` registered by hand
without a signature, or whose artifacts were replaced after signing (a pickle that runs code
when loaded), is refused by the real inference deployment, which keeps serving what it had or
answers 503 saying why; ``finone sign-model`` signs a hand-made version, which then serves."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from ray import serve

from cluster.cli import main
from core.settings import Settings
from serve.inference.champions import ServedModel
from tests.gateway_fixtures import APP
from tests.polling import wait_until
from tests.serve.auth_api import Session
from tests.serve.champions import (
    RETURNS,
    VOLATILITY,
    Champions,
    register_signed,
    register_version,
)
from training.trainer import TrainConfig

TINY = TrainConfig(epochs=1, width=8, depth=1)


class _RunsCodeWhenUnpickled:
    """What an attacker puts in place of a model: unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


@pytest.fixture
async def registry(
    http: httpx.AsyncClient, gateway_url: str, user: Session, champions: Champions
) -> AsyncIterator[MlflowClient]:
    """The registry as the service account sees it; the session's champions serve again after."""
    mlflow.set_tracking_uri(champions.tracking_uri)
    client = MlflowClient(champions.tracking_uri)
    yield client
    client.set_registered_model_alias(RETURNS, "champion", champions.returns_version)
    client.set_registered_model_alias(VOLATILITY, "champion", champions.volatility_version)
    await wait_until(
        lambda: _serves(http, gateway_url, user, champions.returns_version),
        60,
        "the session's champions to serve again",
    )


async def _predict(http: httpx.AsyncClient, url: str, user: Session) -> httpx.Response:
    return await http.get(
        f"{url}/v1/predictions", params={"instrument": "alpaca:IBM"}, headers=user.headers
    )


async def _serves(http: httpx.AsyncClient, url: str, user: Session, version: str) -> bool:
    response = await _predict(http, url, user)
    return response.status_code == 200 and response.json()["returns"]["version"] == version


async def _refused() -> dict[str, str]:
    inference = serve.get_deployment_handle("Forecaster", app_name=APP)
    served: list[ServedModel] = await inference.served.remote()
    return {model.target: model.refused for model in served if model.refused is not None}


async def _wait_refused(target: str, why: str) -> str:
    async def refused() -> bool:
        return why in (await _refused()).get(target, "")

    await wait_until(refused, 60, f"inference to refuse the {target} champion")
    return (await _refused())[target]


async def _hand_made(settings: Settings, tracking_uri: str) -> str:
    """A forecaster logged and registered by hand, as in the MLflow UI: no signature."""
    uri = await register_version(settings, tracking_uri, TINY)
    return str(mlflow.register_model(uri, RETURNS).version)


async def test_champion_registered_by_hand_is_refused_and_the_loaded_one_kept(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    registry: MlflowClient,
) -> None:
    by_hand = await _hand_made(gateway_settings, champions.tracking_uri)

    registry.set_registered_model_alias(RETURNS, "champion", by_hand)

    why = await _wait_refused("returns", "has no signature")
    assert f"finone sign-model {RETURNS} {by_hand}" in why
    assert await _serves(http, gateway_url, user, champions.returns_version)
    # Users see it too: the version still served, and why the one the alias names is not.
    models = await http.get(f"{gateway_url}/v1/models", headers=user.headers)
    assert models.status_code == 200, models.text
    (returns,) = [
        model
        for model in models.json()["models"]
        if (model["target"], model["interval"]) == ("returns", "1d")
    ]
    assert (returns["version"], returns["refused"]) == (champions.returns_version, why)


async def test_unsigned_champions_with_nothing_loaded_answer_503_saying_why(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    registry: MlflowClient,
) -> None:
    by_hand = await _hand_made(gateway_settings, champions.tracking_uri)
    registry.delete_registered_model_alias(RETURNS, "champion")
    registry.delete_registered_model_alias(VOLATILITY, "champion")

    async def nothing_served() -> bool:
        return (await _predict(http, gateway_url, user)).status_code == 503

    await wait_until(nothing_served, 30, "inference to unload the champions")
    registry.set_registered_model_alias(RETURNS, "champion", by_hand)
    await _wait_refused("returns", "has no signature")

    response = await _predict(http, gateway_url, user)
    assert response.status_code == 503
    assert response.json()["code"] == "model_unavailable"
    assert f"{RETURNS} v{by_hand} has no signature" in response.json()["message"]
    assert f"finone sign-model {RETURNS} {by_hand}" in response.json()["message"]


async def test_champion_whose_artifacts_were_replaced_after_signing_never_runs(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    registry: MlflowClient,
    tmp_path: Path,
) -> None:
    uri = await register_version(gateway_settings, champions.tracking_uri, TINY)
    signed = register_signed(gateway_settings, champions.tracking_uri, uri, RETURNS)
    # Replaced through the tracking server by someone who may write there: the pickled model.
    marker = tmp_path / "the-replica-ran-the-attackers-code"
    evil = tmp_path / "python_model.pkl"
    evil.write_bytes(pickle.dumps(_RunsCodeWhenUnpickled(marker)))
    model_id = str(registry.get_model_version(RETURNS, signed).source).rsplit("/", 1)[-1]
    registry.log_model_artifact(model_id, str(evil))

    registry.set_registered_model_alias(RETURNS, "champion", signed)

    why = await _wait_refused("returns", "do not match")
    assert f"{RETURNS} v{signed}" in why
    assert not marker.exists()
    assert await _serves(http, gateway_url, user, champions.returns_version)


async def test_sign_model_command_signs_a_hand_made_version_which_then_serves(
    http: httpx.AsyncClient,
    gateway_url: str,
    gateway_settings: Settings,
    user: Session,
    champions: Champions,
    registry: MlflowClient,
    tmp_path: Path,
) -> None:
    by_hand = await _hand_made(gateway_settings, champions.tracking_uri)
    registry.set_registered_model_alias(RETURNS, "champion", by_hand)
    await _wait_refused("returns", "has no signature")
    env = {
        "FINONE_DATA_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": champions.tracking_uri,
        "FINONE_SECRET_KEY": gateway_settings.secret_key.get_secret_value(),
    }
    runner = CliRunner()

    declined = runner.invoke(main, ["sign-model", RETURNS, by_hand], input="n\n", env=env)
    assert declined.exit_code == 1
    assert "runs the model's code in the inference replicas" in declined.output
    assert "not signed" in declined.output
    assert "has no signature" in (await _refused())["returns"]

    signed = runner.invoke(main, ["sign-model", RETURNS, by_hand, "--yes"], env=env)
    assert signed.exit_code == 0, signed.output
    assert f"signed {RETURNS} v{by_hand}" in signed.output

    await wait_until(
        lambda: _serves(http, gateway_url, user, by_hand), 60, "the signed version to serve"
    )
    assert "returns" not in await _refused()
