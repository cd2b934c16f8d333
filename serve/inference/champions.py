"""The registered versions that serve: the ``champion`` of each target and interval, loaded with
its preprocessing.

A version is looked up by alias, downloaded, and loaded through MLflow's pyfunc flavour, exactly
as it was logged (standardizer, return scale, what it was trained for), only once the downloaded
files match the version's signature (``core.model_signing``): loading unpickles the model, so a
version the platform did not sign never gets that far. A returns and a volatility champion
logged from the same run are one model, loaded once. What the version's training run measured
out of sample is read with it, so that insights cost no call to the registry.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel

from core.intervals import Interval
from core.model_signing import SIGNATURE_TAG, artifacts_digest, verifies
from serve.inference.insights import Evidence
from training.registry import ForecastModel, ForecastSpec, download_version

__all__ = [
    "Champion",
    "Candidate",
    "ServedModel",
    "UnsignedModel",
    "champion_source",
    "load_champion",
]

# Without the alias the registry answers "invalid value"; without the model, "does not exist",
# or behind MLflow's auth "permission denied" (nobody holds a permission on a model not yet made;
# every signed-in user may read the models that exist).
_NO_CHAMPION = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"}
# A retraining run logs its winner's out-of-sample scores as "model.<metric>" and, for
# volatility, "model_vol.<metric>" (training.pipeline.retrain).
_EVIDENCE_METRICS = {
    "direction": "model.direction",
    "direction_p": "model.direction_p",
    "coverage_80": "model.coverage_80",
    "returns_dm_p": "model.dm_p",
    "volatility_dm_p": "model_vol.dm_p",
}


@dataclass(frozen=True, slots=True)
class Candidate:
    """The version a ``champion`` alias points at, as the registry describes it."""

    name: str
    version: str
    source: str
    signature: str | None
    # The training run that logged it; None for a version registered from files alone.
    run_id: str | None


class UnsignedModel(Exception):
    """A version whose artifacts do not match its signature, or that has none."""

    def __init__(self, candidate: Candidate, message: str) -> None:
        super().__init__(message)
        self.candidate = candidate


@dataclass(frozen=True, slots=True)
class Champion:
    name: str
    version: str
    source: str
    # What the signature covers: the digest of the artifacts the model was loaded from.
    digest: str
    model: PyFuncModel
    forecaster: ForecastModel
    evidence: Evidence

    @property
    def spec(self) -> ForecastSpec:
        return self.forecaster.spec


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One target's model of an interval as a replica serves it: its champion's version and
    what it reads, or (all None) that none serves, with why the version the alias names is
    refused, if one is."""

    target: str
    name: str
    interval: Interval
    version: str | None
    horizon: int | None
    bars_needed: int | None
    refused: str | None

    @classmethod
    def of(
        cls,
        target: str,
        name: str,
        interval: Interval,
        champion: Champion | None,
        refused: str | None,
    ) -> ServedModel:
        if champion is None:
            return cls(target, name, interval, None, None, None, refused)
        spec = champion.spec
        return cls(
            target,
            name,
            interval,
            champion.version,
            spec.vol_horizon if target == "volatility" else spec.horizon,
            champion.forecaster.bars_needed,
            refused,
        )


def champion_source(client: MlflowClient, name: str) -> Candidate | None:
    """The version ``name``'s ``champion`` alias points at; None without one.

    Raises MlflowException when the registry cannot be asked.
    """
    try:
        version = client.get_model_version_by_alias(name, "champion")
    except MlflowException as error:
        if error.error_code in _NO_CHAMPION:
            return None
        raise
    return Candidate(
        name,
        str(version.version),
        str(version.source),
        version.tags.get(SIGNATURE_TAG),
        version.run_id or None,
    )


def load_champion(
    client: MlflowClient, candidate: Candidate, signing_key: bytes, loaded: list[Champion | None]
) -> Champion:
    """Load ``candidate`` once its artifacts verify against its signature, reusing a model
    already in ``loaded`` that came from the same source. Raises UnsignedModel when they do not,
    MlflowException/OSError when it cannot be fetched, and TypeError for a version that is not a
    forecaster of this platform."""
    name, version, source = candidate.name, candidate.version, candidate.source
    for other in loaded:
        if other is not None and other.source == source:
            _check_signature(candidate, signing_key, other.digest)
            evidence = _evidence(client, candidate.run_id)
            return Champion(
                name, version, source, other.digest, other.model, other.forecaster, evidence
            )
    with tempfile.TemporaryDirectory() as tmp:
        # Loaded from the very files that were verified, not downloaded a second time.
        root = download_version(client, name, version, Path(tmp))
        digest = artifacts_digest(root)
        _check_signature(candidate, signing_key, digest)
        model = mlflow.pyfunc.load_model(str(root))
    forecaster = model.unwrap_python_model()
    if not isinstance(forecaster, ForecastModel):
        raise TypeError(f"{name} v{version} is not a forecaster of this platform")
    evidence = _evidence(client, candidate.run_id)
    return Champion(name, version, source, digest, model, forecaster, evidence)


def _evidence(client: MlflowClient, run_id: str | None) -> Evidence:
    """The out-of-sample scores ``run_id`` recorded; none for a version without a run or whose
    run was deleted since. Raises MlflowException when the registry cannot be asked."""
    if run_id is None:
        return Evidence()
    try:
        metrics = client.get_run(run_id).data.metrics
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return Evidence()
        raise
    scores = {field: metrics.get(key) for field, key in _EVIDENCE_METRICS.items()}
    # A score that could not be computed (NaN) says no more than one never logged.
    return Evidence(
        **{
            field: None if value is None or not math.isfinite(value) else value
            for field, value in scores.items()
        }
    )


def _check_signature(candidate: Candidate, signing_key: bytes, digest: str) -> None:
    if verifies(signing_key, digest, candidate.signature):
        return
    why = (
        "has no signature"
        if candidate.signature is None
        else "has a signature its artifacts do not match (changed since, or another key's)"
    )
    raise UnsignedModel(
        candidate,
        f"{candidate.name} v{candidate.version} {why}: the platform's training did not register "
        f"it as it is; an operator who trusts it can sign it with "
        f"`finone sign-model {candidate.name} {candidate.version}`",
    )
