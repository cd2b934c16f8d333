"""Forecasts from the latest bars: features made exactly as in training, fed to each champion.

Pure functions over bars already fetched, so one batch of requests costs one model call per
loaded model, whatever the number of instruments in it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from core.events import Forecast, ReturnForecast, VolatilityForecast
from core.intervals import Interval
from serve.inference.champions import Champion
from training.errors import DatasetError
from training.features import FEATURES, feature_frame, unbroken_runs

__all__ = [
    "ForecastRequest",
    "Refusal",
    "RefusalCode",
    "OutputCache",
    "bars_wanted",
    "make_forecasts",
    "probability_up",
]

RefusalCode = Literal[
    "model_unavailable", "unknown_instrument", "insufficient_history", "service_unavailable"
]
# A few bars more than the look-back, so that one bar with an undefined feature (a day without
# volume) does not leave a sequence model short of rows.
_SPARE_BARS = 10
# The standard normal's 90% quantile: the spread between q50 and q10 (or q90) in sigmas.
_Z90 = 1.2815515655446004


@dataclass(frozen=True, slots=True)
class ForecastRequest:
    """A forecast (or insight) of ``instrument`` from its bars of ``interval``, made by the
    champions of that interval."""

    instrument: str
    interval: Interval


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an instrument has no forecast; ``code`` is the API's error code."""

    code: RefusalCode
    message: str


@dataclass
class OutputCache:
    """A model's output for an instrument, kept with a digest of the exact bars it came from:
    until a bar changes (daily bars change once a day) a request costs no features and no model
    call. One entry per model and instrument; models no longer served are dropped."""

    entries: dict[tuple[str, str], tuple[bytes, pd.Series | Refusal]] = field(default_factory=dict)

    def get(self, source: str, instrument: str, digest: bytes) -> pd.Series | Refusal | None:
        entry = self.entries.get((source, instrument))
        return entry[1] if entry is not None and entry[0] == digest else None

    def put(self, source: str, instrument: str, digest: bytes, answer: pd.Series | Refusal) -> None:
        self.entries[(source, instrument)] = (digest, answer)

    def retain(self, sources: set[str]) -> None:
        for key in [key for key in self.entries if key[0] not in sources]:
            self.entries.pop(key, None)


def _digest(bars: pd.DataFrame) -> bytes:
    values = bars.index.asi8.tobytes() + bars.to_numpy().tobytes()
    return hashlib.blake2b(values, digest_size=16).digest()


def bars_wanted(champions: list[Champion]) -> dict[str, int]:
    """interval -> how many of the latest bars of each instrument the champions need."""
    wanted: dict[str, int] = {}
    for champion in champions:
        interval = champion.spec.interval
        wanted[interval] = max(
            wanted.get(interval, 0), champion.forecaster.bars_needed + _SPARE_BARS
        )
    return wanted


def probability_up(q10: float, q50: float, q90: float) -> float:
    """P(return > 0) under a two-piece normal through the three quantiles: each side of the
    median takes its spread from the quantile on that side."""
    spread = q50 - q10 if q50 >= 0 else q90 - q50
    if spread <= 0:
        return 1.0 if q50 > 0 else 0.0 if q50 < 0 else 0.5
    return 0.5 * (1 + math.erf(q50 / (spread / _Z90) / math.sqrt(2)))


def make_forecasts(
    instruments: list[str],
    bars: dict[str, dict[str, pd.DataFrame]],
    returns: Champion | None,
    volatility: Champion | None,
    made_at_ns: int,
    cache: OutputCache,
) -> list[Forecast | Refusal]:
    """One forecast (or the reason there is none) per instrument, in order. ``bars``: interval
    -> instrument -> its latest bars, as ``training.datasets.recent_bars`` gives them."""
    if returns is None and volatility is None:
        refusal = Refusal(
            "model_unavailable",
            "no champion model is registered yet; train one with `finone train` "
            "(or POST /v1/ops/retrain) and retry",
        )
        return [refusal] * len(instruments)
    unique = list(dict.fromkeys(instruments))
    outputs: dict[int, dict[str, pd.Series | Refusal]] = {}
    for champion in (returns, volatility):
        if champion is not None and id(champion.model) not in outputs:
            outputs[id(champion.model)] = _predict(
                champion, unique, bars.get(champion.spec.interval, {}), cache
            )
    results: dict[str, Forecast | Refusal] = {}
    for instrument in unique:
        return_part = vol_part = None
        refusals: list[Refusal] = []
        if returns is not None:
            row = outputs[id(returns.model)][instrument]
            if isinstance(row, Refusal):
                refusals.append(row)
            else:
                return_part = _return_forecast(returns, row)
        if volatility is not None:
            row = outputs[id(volatility.model)][instrument]
            if isinstance(row, Refusal):
                refusals.append(row)
            else:
                vol_part = _volatility_forecast(volatility, row)
        if return_part is None and vol_part is None:
            results[instrument] = refusals[0]
        else:
            results[instrument] = Forecast(
                instrument=instrument,
                exchange_ts_ns=made_at_ns,
                receive_ts_ns=made_at_ns,
                returns=return_part,
                volatility=vol_part,
            )
    return [results[instrument] for instrument in instruments]


def _predict(
    champion: Champion, instruments: list[str], bars: dict[str, pd.DataFrame], cache: OutputCache
) -> dict[str, pd.Series | Refusal]:
    """The model's output row for the latest bar of each instrument, or why there is none."""
    rows = champion.forecaster.feature_rows
    interval = champion.spec.interval
    answers: dict[str, pd.Series | Refusal] = {}
    digests: dict[str, bytes] = {}
    pieces: list[pd.DataFrame] = []
    for instrument in instruments:
        history = bars.get(instrument)
        if history is None:
            answers[instrument] = Refusal(
                "unknown_instrument", f"no {interval} bars of {instrument} to forecast from"
            )
            continue
        digests[instrument] = digest = _digest(history)
        known = cache.get(champion.source, instrument, digest)
        if known is not None:
            answers[instrument] = known
            continue
        runs = unbroken_runs(history, interval)
        try:
            features = feature_frame(runs[-1])
        except DatasetError as error:
            since = " since its last gap" if len(runs) > 1 else ""
            answers[instrument] = Refusal("insufficient_history", f"{instrument}{since}: {error}")
            continue
        if features.index[-1] != history.index[-1]:
            answers[instrument] = Refusal(
                "insufficient_history",
                f"{instrument}: the latest {interval} bar leaves a feature undefined "
                "(constant prices or volumes)",
            )
            continue
        pieces.append(features.iloc[-rows:].assign(instrument=instrument))
    if pieces:
        table = pd.concat(pieces)
        # MLflow passes on what ForecastModel.predict answers: a frame.
        predicted: pd.DataFrame = champion.model.predict(table[[*FEATURES, "instrument"]])
        predicted["instrument"] = table["instrument"].to_numpy()
        predicted["bar_start"] = table.index
        for _, row in predicted.groupby("instrument", sort=False).tail(1).iterrows():
            answers[str(row["instrument"])] = row
    for instrument, digest in digests.items():
        cache.put(champion.source, instrument, digest, answers[instrument])
    return answers


def _return_forecast(champion: Champion, row: pd.Series) -> ReturnForecast:
    q10, q50, q90 = float(row["q10"]), float(row["q50"]), float(row["q90"])
    return ReturnForecast(
        model=champion.name,
        version=champion.version,
        interval=champion.spec.interval,
        horizon=champion.spec.horizon,
        bar_start_ts_ns=pd.Timestamp(row["bar_start"]).value,
        q10=q10,
        q50=q50,
        q90=q90,
        prob_up=probability_up(q10, q50, q90),
    )


def _volatility_forecast(champion: Champion, row: pd.Series) -> VolatilityForecast:
    return VolatilityForecast(
        model=champion.name,
        version=champion.version,
        interval=champion.spec.interval,
        horizon=champion.spec.vol_horizon,
        bar_start_ts_ns=pd.Timestamp(row["bar_start"]).value,
        volatility=float(row["vol"]),
    )
