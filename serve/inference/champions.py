"""The registered versions that serve: each target's ``champion``, loaded with its preprocessing.

A version is looked up by alias and loaded through MLflow's pyfunc flavour, exactly as it was
logged (standardizer, return scale, what it was trained for). A returns and a volatility
champion logged from the same run are one model, loaded once.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.registry import ForecastModel, ForecastSpec

__all__ = ["Champion", "champion_source", "load_champion"]

# Without the model the registry answers "does not exist"; without the alias, "invalid value".
_NO_CHAMPION = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}


@dataclass(frozen=True, slots=True)
class Champion:
    name: str
    version: str
    source: str
    model: mlflow.pyfunc.PyFuncModel
    forecaster: ForecastModel

    @property
    def spec(self) -> ForecastSpec:
        return self.forecaster.spec


def champion_source(client: MlflowClient, name: str) -> tuple[str, str] | None:
    """(version, model source) that ``name``'s ``champion`` alias points at; None without one.

    Raises MlflowException when the registry cannot be asked.
    """
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException as error:
        if error.error_code in _NO_CHAMPION:
            return None
        raise
    return str(version.version), str(version.source)


def load_champion(name: str, version: str, source: str, loaded: list[Champion | None]) -> Champion:
    """Load version ``version`` of ``name``, reusing a model already in ``loaded`` that came from
    the same source. Raises MlflowException/OSError when it cannot be fetched, and TypeError for
    a version that is not a forecaster of this platform."""
    for other in loaded:
        if other is not None and other.source == source:
            return Champion(name, version, source, other.model, other.forecaster)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    forecaster = model.unwrap_python_model()
    if not isinstance(forecaster, ForecastModel):
        raise TypeError(f"{name} v{version} is not a forecaster of this platform")
    return Champion(name, version, source, model, forecaster)
