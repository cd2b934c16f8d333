"""Forecasters as MLflow models, and the gate that decides which version serves.

A fitted forecaster is logged once as a pyfunc model carrying its preprocessing (the feature
standardizer and return scale) and registered under one name per target: returns and
volatility. Each version registered is signed (``core.model_signing``), without which inference
will not load it. The alias ``champion`` moves to a new version only when it beats the current
champion and every baseline on held-out walk-forward windows (pinball loss for returns, QLIKE
for volatility), the best baseline by a Diebold-Mariano test at the 5% level; otherwise the
version becomes ``challenger`` and the reason is kept as a tag.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from core.model_signing import SIGNATURE_TAG, artifacts_digest, sign
from training.features import FEATURES, LOOKBACK
from training.scaling import Standardizer
from training.trainer import Fitted, TrainConfig, predict

__all__ = [
    "TARGET_METRICS",
    "model_name",
    "SIGNIFICANCE",
    "ForecastSpec",
    "ForecastModel",
    "Decision",
    "log_forecaster",
    "forecast_frame",
    "register_and_gate",
    "download_version",
    "sign_version",
]

# The held-out score that gates each target's models (lower is better).
TARGET_METRICS = {"returns": "pinball", "volatility": "qlike"}
_SCORE_TAG = "oos_score"
_P_VALUE_TAG = "oos_dm_p"
# A version must beat the best baseline at this level of the Diebold-Mariano test.
SIGNIFICANCE = 0.05


def model_name(target: str, interval: str) -> str:
    """The registered model of ``target``'s forecasts from ``interval`` bars. Daily models keep
    the names they had before intraday ones existed, so their champions still serve."""
    return f"finone-{target}" if interval == "1d" else f"finone-{target}-{interval}"


@dataclass(frozen=True, slots=True)
class ForecastSpec:
    """What a forecaster was trained on and for: inference feeds it bars of this interval and
    reads its outputs as the next ``horizon`` bars' return and ``vol_horizon`` bars' volatility."""

    interval: str
    horizon: int
    vol_horizon: int
    instruments: tuple[str, ...]


class ForecastModel(PythonModel):
    """The forecaster as MLflow serves it: features and the instrument (a GRU reads each
    instrument's own recent rows) in, q10/q50/q90 and vol out."""

    fitted: Fitted
    spec: ForecastSpec

    @property
    def feature_rows(self) -> int:
        """Rows of features the latest forecast reads: a GRU's sequence, or the latest row."""
        return self.fitted.config.sequence if self.fitted.config.model == "gru" else 1

    @property
    def bars_needed(self) -> int:
        """Bars of one instrument that make the features of its latest forecast."""
        return LOOKBACK + self.feature_rows

    def load_context(self, context: PythonModelContext) -> None:
        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        if meta["features"] != list(FEATURES):
            # A TypeError is what inference refuses a version with, keeping the one it serves.
            raise TypeError(
                f"the forecaster was trained on the features {', '.join(meta['features'])}; this "
                f"platform makes {', '.join(FEATURES)}: retrain it"
            )
        config = TrainConfig(**meta["config"])
        from training.models import build_network

        model = build_network(
            config.model, len(FEATURES), config.width, config.depth, config.dropout, config.members
        )
        model.load_state_dict(torch.load(context.artifacts["weights"], weights_only=True))
        standardizer = Standardizer(
            mean=np.asarray(meta["standardizer"]["mean"]),
            scale=np.asarray(meta["standardizer"]["scale"]),
        )
        low, middle, high = meta["calibration"]
        self.fitted = Fitted(
            model=model,
            standardizer=standardizer,
            return_scale=meta["return_scale"],
            config=config,
            calibration=(low, middle, high),
        )
        spec = meta["spec"]
        self.spec = ForecastSpec(**spec | {"instruments": tuple(spec["instruments"])})

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, str] | None = None,
    ) -> pd.DataFrame:
        return forecast_frame(self.fitted, model_input)


def forecast_frame(fitted: Fitted, table: pd.DataFrame) -> pd.DataFrame:
    """q10, q50, q90 of the next return and the volatility, one row per row of ``table``."""
    quantiles, vol = predict(fitted, table)
    return pd.DataFrame(
        {"q10": quantiles[:, 0], "q50": quantiles[:, 1], "q90": quantiles[:, 2], "vol": vol},
        index=table.index,
    )


def log_forecaster(fitted: Fitted, spec: ForecastSpec, example: pd.DataFrame) -> str:
    """Log the forecaster in the active run; returns its model URI."""
    with tempfile.TemporaryDirectory() as tmp:
        weights, meta = Path(tmp) / "weights.pt", Path(tmp) / "meta.json"
        torch.save(fitted.model.state_dict(), weights)
        meta.write_text(
            json.dumps(
                {
                    "config": asdict(fitted.config),
                    "standardizer": fitted.standardizer.as_dict(),
                    "return_scale": fitted.return_scale,
                    "calibration": list(fitted.calibration),
                    "features": list(FEATURES),
                    "spec": asdict(spec),
                }
            )
        )
        inputs = example[[*FEATURES, "instrument"]]
        outputs = forecast_frame(fitted, inputs)
        info = mlflow.pyfunc.log_model(
            name="forecaster",
            python_model=ForecastModel(),
            artifacts={"weights": str(weights), "meta": str(meta)},
            signature=infer_signature(inputs, outputs),
            input_example=inputs.head(5),
        )
    return str(info.model_uri)


@dataclass(frozen=True, slots=True)
class Decision:
    name: str
    version: str
    alias: str
    reason: str


def register_and_gate(
    client: MlflowClient,
    model_uri: str,
    name: str,
    metric: str,
    score: float,
    baselines: dict[str, float],
    p_value: float,
    signing_key: bytes,
) -> Decision:
    """Register ``model_uri`` as a version of ``name``, signed with ``signing_key``, and move
    ``champion`` to it only if its ``metric`` beats every baseline's, significantly so against
    the best of them (``p_value``, the Diebold-Mariano test's, below SIGNIFICANCE), and beats
    the champion's (lower is better)."""
    version = str(mlflow.register_model(model_uri, name).version)
    sign_version(client, name, version, signing_key)
    client.set_model_version_tag(name, version, _SCORE_TAG, repr(score))
    client.set_model_version_tag(name, version, _P_VALUE_TAG, repr(p_value))
    losing = sorted(b for b, value in baselines.items() if not score < value)
    best = min(baselines, key=baselines.__getitem__)
    champion = _champion_score(client, name)
    if losing:
        reason = f"{metric} {score:.6g} does not beat baseline(s) {', '.join(losing)}"
    elif not p_value < SIGNIFICANCE:
        reason = (
            f"{metric} {score:.6g} beats every baseline but not significantly: best baseline "
            f"{best} ({baselines[best]:.6g}), Diebold-Mariano p {p_value:.3g} "
            f"(needs < {SIGNIFICANCE})"
        )
    elif champion is not None and champion[1] is not None and not score < champion[1]:
        reason = f"{metric} {score:.6g} does not beat champion v{champion[0]} ({champion[1]:.6g})"
    else:
        reason = (
            f"{metric} {score:.6g} beats every baseline, the best ({best}, "
            f"{baselines[best]:.6g}) with Diebold-Mariano p {p_value:.3g}"
        )
        if champion is not None:
            reason += (
                f", and champion v{champion[0]} ({champion[1]:.6g})"
                if champion[1] is not None
                else f"; champion v{champion[0]} has no held-out score to compare (set by hand?)"
            )
        client.set_registered_model_alias(name, "champion", version)
        client.set_model_version_tag(name, version, "promotion", reason)
        return Decision(name, version, "champion", reason)
    client.set_registered_model_alias(name, "challenger", version)
    client.set_model_version_tag(name, version, "promotion", reason)
    return Decision(name, version, "challenger", reason)


def sign_version(client: MlflowClient, name: str, version: str, signing_key: bytes) -> str:
    """Sign version ``version`` of ``name`` as the registry stores it now (the files inference
    will download); returns the digest of its artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        digest = artifacts_digest(download_version(client, name, version, Path(tmp)))
    client.set_model_version_tag(name, version, SIGNATURE_TAG, sign(signing_key, digest))
    return digest


def download_version(client: MlflowClient, name: str, version: str, into: Path) -> Path:
    """The files of version ``version`` of ``name`` as the artifact store holds them, in
    ``into``; returns the model's root. Not through ``models:/`` URIs, which add a file naming
    the version: two versions of one logged model have the same files, and one signature."""
    location = client.get_model_version_download_uri(name, version)
    return Path(
        mlflow.artifacts.download_artifacts(
            location, dst_path=str(into), tracking_uri=client.tracking_uri
        )
    )


def _champion_score(client: MlflowClient, name: str) -> tuple[str, float | None] | None:
    """(version, held-out score) of the champion; the score is None for a version the gate did
    not register (an alias moved by hand in the MLflow UI)."""
    try:
        current = client.get_model_version_by_alias(name, "champion")
    except MlflowException:
        return None
    recorded = current.tags.get(_SCORE_TAG)
    return str(current.version), None if recorded is None else float(recorded)
