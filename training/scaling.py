"""Standardizing features with statistics of the training window only (part of the model's
preprocessing: it travels with the model to inference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Standardizer"]


@dataclass(frozen=True, slots=True)
class Standardizer:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray) -> Standardizer:
        scale = train.std(axis=0)
        # A feature constant over the training window carries nothing; keep it at zero.
        return cls(mean=train.mean(axis=0), scale=np.where(scale > 0, scale, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.scale).astype(np.float32)

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}
