"""Fitting a forecaster on one training window and predicting with it.

Everything the model needs at inference travels with it in ``Fitted``: the feature standardizer
and the return scale, both computed on the training window only, and the quantiles' calibration,
computed on the validation window that follows it.

Calibration is split-conformal per quantile: on the validation rows, the errors of each
quantile in units of the forecast 10-90% width, whose empirical quantile at that level becomes a
shift (in the same units) added to every later forecast. A network's raw quantiles can be too
narrow or too wide for the most recent regime; shifted, each hits its level on the window just
before the one it forecasts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch

from training.features import FEATURES
from training.metrics import QUANTILES, pinball_loss, qlike
from training.models import ForecastEnsemble, build_network, forecast_loss, split_outputs
from training.scaling import Standardizer

__all__ = ["TrainConfig", "Fitted", "fit", "train_epochs", "predict", "sequences"]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    model: Literal["mlp", "gru"] = "mlp"
    width: int = 64
    depth: int = 2
    dropout: float = 0.1
    learning_rate: float = 1e-3
    epochs: int = 20
    batch_size: int = 256
    sequence: int = 20
    vol_weight: float = 1.0
    seed: int = 0
    # Networks trained from seeds seed, seed + 1, ... and averaged (see ForecastEnsemble).
    members: int = 1


# Fewer validation rows than this estimate a 10% quantile too loosely to correct anything.
MIN_CALIBRATION_ROWS = 50
NO_CALIBRATION = (0.0, 0.0, 0.0)


@dataclass
class Fitted:
    model: torch.nn.Module
    standardizer: Standardizer
    return_scale: float
    config: TrainConfig
    history: list[dict[str, float]] = field(default_factory=list)
    # Per quantile, the shift in units of the forecast 10-90% width (see the module's text).
    calibration: tuple[float, float, float] = NO_CALIBRATION


def sequences(table: pd.DataFrame, values: np.ndarray, length: int) -> np.ndarray:
    """(rows, length, features): each row's last ``length`` rows of its own instrument, oldest
    first; the first rows of an instrument repeat its first row rather than borrow the past of
    another instrument."""
    out = np.empty((len(table), length, values.shape[1]), dtype=np.float32)
    instruments = table["instrument"].to_numpy()
    for instrument in pd.unique(instruments):
        positions = np.flatnonzero(instruments == instrument)
        rows = values[positions]
        padded = np.concatenate([np.repeat(rows[:1], length - 1, axis=0), rows])
        for offset in range(length):
            out[positions, offset, :] = padded[offset : offset + len(rows)]
    return out


def _inputs(table: pd.DataFrame, fitted: Fitted) -> torch.Tensor:
    values = fitted.standardizer.transform(table[list(FEATURES)].to_numpy())
    if fitted.config.model == "gru":
        return torch.from_numpy(sequences(table, values, fitted.config.sequence))
    return torch.from_numpy(values)


def _targets(table: pd.DataFrame, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    returns = torch.tensor(table["target_return"].to_numpy() / scale, dtype=torch.float32)
    vols = torch.tensor(table["target_vol"].to_numpy() / scale, dtype=torch.float32)
    return returns, vols


def fit(train: pd.DataFrame, valid: pd.DataFrame, config: TrainConfig) -> Fitted:
    """Train on ``train`` (``config.members`` networks); score ``valid`` (in return units) after
    every epoch, in ``history`` (the first member's); calibrate the quantiles on ``valid``."""
    # Run each member's epochs through; the last one handed back is the trained network.
    members = [
        deque(train_epochs(train, valid, replace(config, seed=config.seed + i)), maxlen=1)[0]
        for i in range(config.members)
    ]
    first = members[0]
    fitted = Fitted(
        model=first.model
        if len(members) == 1
        else ForecastEnsemble([member.model for member in members]),
        standardizer=first.standardizer,
        return_scale=first.return_scale,
        config=config,
        history=first.history,
    )
    fitted.calibration = calibration_shifts(fitted, valid)
    return fitted


def calibration_shifts(fitted: Fitted, rows: pd.DataFrame) -> tuple[float, float, float]:
    """Per quantile, the shift that makes ``fitted``'s forecasts hit their levels on ``rows``
    (NO_CALIBRATION when there are too few rows)."""
    if len(rows) < MIN_CALIBRATION_ROWS:
        return NO_CALIBRATION
    quantiles, _ = _raw_predict(fitted, rows)
    width = quantiles[:, 2] - quantiles[:, 0]
    errors = (rows["target_return"].to_numpy()[:, None] - quantiles) / width[:, None]
    low, _, high = (float(np.quantile(errors[:, i], level)) for i, level in enumerate(QUANTILES))
    return low, 0.0, high


def train_epochs(train: pd.DataFrame, valid: pd.DataFrame, config: TrainConfig) -> Iterator[Fitted]:
    """The same training, handing back the model after every epoch (for schedulers that stop
    unpromising trials early)."""
    torch.manual_seed(config.seed)
    standardizer = Standardizer.fit(train[list(FEATURES)].to_numpy())
    scale = float(train["target_return"].std()) or 1.0
    model = build_network(config.model, len(FEATURES), config.width, config.depth, config.dropout)
    fitted = Fitted(model=model, standardizer=standardizer, return_scale=scale, config=config)
    inputs, (returns, vols) = _inputs(train, fitted), _targets(train, scale)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    for epoch in range(config.epochs):
        model.train()
        total, batches = 0.0, 0
        order = torch.randperm(len(inputs), generator=generator)
        for batch in torch.split(order, config.batch_size):
            pinball, vol_loss = forecast_loss(model(inputs[batch]), returns[batch], vols[batch])
            loss = pinball + config.vol_weight * vol_loss
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        quantiles, vol = predict(fitted, valid)
        fitted.history.append(
            {
                "epoch": float(epoch + 1),
                "train_loss": total / batches,
                "valid_pinball": pinball_loss(valid["target_return"].to_numpy(), quantiles),
                "valid_qlike": qlike(valid["target_vol"].to_numpy(), vol),
            }
        )
        yield fitted


def predict(fitted: Fitted, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(return quantiles (rows, 3), volatility (rows,)) in the data's own units, the quantiles
    calibrated (and kept in order)."""
    quantiles, vol = _raw_predict(fitted, table)
    width = quantiles[:, 2] - quantiles[:, 0]
    shifted = quantiles + np.asarray(fitted.calibration)[None, :] * width[:, None]
    return np.sort(shifted, axis=1), vol


def _raw_predict(fitted: Fitted, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    fitted.model.eval()
    with torch.no_grad():
        quantiles, log_variance = split_outputs(fitted.model(_inputs(table, fitted)))
    scale = fitted.return_scale
    return quantiles.numpy() * scale, np.exp(log_variance.numpy() / 2) * scale
