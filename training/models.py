"""PyTorch forecasters: one network predicts the return quantiles and the volatility together.

Heads: a median and two positive gaps give the 10/50/90% quantiles (ordered by construction);
a log-variance gives the volatility. Losses: pinball for the quantiles, QLIKE (in its
log-variance form) for the volatility. Two bodies: an MLP over the latest features, and a GRU
over the last ``sequence`` bars of features.
"""

from __future__ import annotations

import torch
from torch import nn

from training.metrics import QUANTILES

__all__ = [
    "ForecastMLP",
    "ForecastGRU",
    "ForecastEnsemble",
    "build_network",
    "forecast_loss",
    "split_outputs",
]


# The four raw outputs: median, lower gap, upper gap, log-variance (see split_outputs).
_OUTPUTS = 4


class ForecastMLP(nn.Module):
    def __init__(
        self, features: int, width: int = 64, depth: int = 2, dropout: float = 0.1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = features
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.GELU(), nn.Dropout(dropout)]
            size = width
        self.body = nn.Sequential(*layers)
        self.heads = nn.Linear(size, _OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, features) or (batch, sequence, features), of which the last row counts."""
        if x.dim() == 3:
            x = x[:, -1, :]
        raw: torch.Tensor = self.heads(self.body(x))
        return raw


class ForecastGRU(nn.Module):
    def __init__(
        self, features: int, width: int = 64, depth: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(
            features,
            width,
            num_layers=depth,
            batch_first=True,
            dropout=dropout if depth > 1 else 0.0,
        )
        self.heads = nn.Linear(width, _OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch, sequence, features), oldest first."""
        output, _ = self.gru(x)
        raw: torch.Tensor = self.heads(output[:, -1, :])
        return raw


class ForecastEnsemble(nn.Module):
    """Networks of one kind trained from different seeds, their raw outputs averaged: the
    median and log-variance are the members' means, the quantile gaps close to them."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw: torch.Tensor = torch.stack([member(x) for member in self.members]).mean(dim=0)
        return raw


def build_network(
    kind: str, features: int, width: int, depth: int, dropout: float, members: int = 1
) -> nn.Module:
    """An untrained network of ``kind`` ("mlp" or "gru"); an ensemble of ``members`` of them
    when more than one."""
    body = ForecastGRU if kind == "gru" else ForecastMLP
    if members == 1:
        return body(features, width, depth, dropout)
    return ForecastEnsemble([body(features, width, depth, dropout) for _ in range(members)])


def split_outputs(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(quantiles (batch, 3) ordered 10/50/90, log-variance (batch,))."""
    median = raw[:, 0]
    low = median - nn.functional.softplus(raw[:, 1])
    high = median + nn.functional.softplus(raw[:, 2])
    return torch.stack([low, median, high], dim=1), raw[:, 3]


def forecast_loss(
    raw: torch.Tensor, target_return: torch.Tensor, target_vol: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pinball loss, QLIKE loss); both targets are in the model's (scaled) units."""
    quantiles, log_variance = split_outputs(raw)
    taus = torch.tensor(QUANTILES, dtype=raw.dtype, device=raw.device)
    errors = target_return[:, None] - quantiles
    pinball = torch.maximum(taus * errors, (taus - 1) * errors).mean()
    realized = target_vol.pow(2).clamp_min(1e-8)
    # QLIKE up to constants: realized / predicted + log(predicted), in log-variance form.
    qlike = (realized * torch.exp(-log_variance) + log_variance - torch.log(realized) - 1).mean()
    return pinball, qlike
