"""Standardizing features with statistics of the training window only (part of the model's
preprocessing: it travels with the model to inference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Standardizer"]


@dataclass(frozen=True, slots=True)
class Standardizer:
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]

    @classmethod
    def fit(cls, train: NDArray[np.float64]) -> Standardizer:
        scale = train.std(axis=0)
        # A feature constant over the training window carries nothing; keep it at zero.
        return cls(mean=train.mean(axis=0), scale=np.where(scale > 0, scale, 1.0))

    def transform(self, values: NDArray[np.float64]) -> NDArray[np.float32]:
        return ((values - self.mean) / self.scale).astype(np.float32)

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}
