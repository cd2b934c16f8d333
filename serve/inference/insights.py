"""Insights: a short plain-language reading of an instrument, made from its forecast, its
history and what the champions' training runs measured out of sample.

Pure functions over what the inference deployment already holds (the bars it read, the scores
loaded with each champion), so the same bars and the same models always make the same words.
Verdicts are decided on the numbers as the text rounds them, so the two never disagree; the
findings carry the numbers unrounded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.events import (
    Finding,
    Forecast,
    Insight,
    ModelRef,
    ReturnForecast,
    Verdict,
    VolatilityForecast,
)
from core.intervals import INTERVAL_NS
from training.features import unbroken_runs

__all__ = ["Evidence", "history_bars", "make_insight"]

_YEAR_DAYS = 365
_YEAR = pd.Timedelta(days=_YEAR_DAYS)
# A year of hourly bars fits; minute bars are compared over their latest week or so, and the
# text then says how many days that is.
_MAX_HISTORY_BARS = 10_000
# Fewer volatility windows than this place nothing within a range.
_MIN_WINDOWS = 20
# Whole percentiles of the year's volatility below or above which it reads as calm or elevated.
_CALM_BELOW, _ELEVATED_ABOVE = 20, 80
_SIGNIFICANT = 0.05
# Out-of-sample coverage of the 80% interval (in percent, as the text rounds it) that reads as
# calibrated.
_CALIBRATED = (75.0, 85.0)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Out-of-sample scores the training run of a champion recorded; None where it recorded
    none (runs older than the score, versions registered by hand)."""

    # Share of next-bar directions the median called right, and the one-sided binomial p-value
    # that this beats a coin.
    direction: float | None = None
    direction_p: float | None = None
    # Share of outcomes inside the 10-90% interval.
    coverage_80: float | None = None
    # Diebold-Mariano p-values that the loss is below the best baseline's, per target.
    returns_dm_p: float | None = None
    volatility_dm_p: float | None = None


def history_bars(interval: str, vol_horizon: int) -> int:
    """How many of the latest bars of ``interval`` hold a year of ``vol_horizon``-bar volatility
    windows (capped: see _MAX_HISTORY_BARS)."""
    year = math.ceil(_YEAR_DAYS * INTERVAL_NS["1d"] / INTERVAL_NS[interval])
    return min(year + vol_horizon + 1, _MAX_HISTORY_BARS)


def make_insight(
    forecast: Forecast,
    bars: Mapping[str, pd.DataFrame],
    returns_evidence: Evidence,
    volatility_evidence: Evidence,
) -> Insight:
    """The reading of ``forecast``'s instrument. ``bars``: interval -> the instrument's latest
    bars, oldest first (``history_bars`` of them for a full year's comparison), ending with the
    bar the forecast was made from; each evidence is that of the part's champion."""
    returns, volatility = forecast.returns, forecast.volatility
    lead = returns if returns is not None else volatility
    if lead is None:
        raise ValueError(f"the forecast of {forecast.instrument} has neither part")
    said: list[tuple[Finding, str | None]] = []
    if volatility is not None:
        said.append(_volatility_regime(volatility, bars[volatility.interval]))
    if returns is not None:
        history = bars[returns.interval]
        close = float(history["close"].loc[pd.Timestamp(returns.bar_start_ts_ns, tz="UTC")])
        said += [
            _next_bar_range(returns, close),
            _directional_edge(returns_evidence),
            _calibration(returns_evidence),
        ]
    said.append(_skill(returns, volatility, returns_evidence, volatility_evidence))
    briefs = [brief for _, brief in said if brief is not None]
    summary = "; ".join(briefs) + "."
    return Insight(
        instrument=forecast.instrument,
        exchange_ts_ns=lead.bar_start_ts_ns,
        receive_ts_ns=lead.bar_start_ts_ns,
        interval=lead.interval,
        returns=None if returns is None else ModelRef(model=returns.model, version=returns.version),
        volatility=(
            None
            if volatility is None
            else ModelRef(model=volatility.model, version=volatility.version)
        ),
        summary=summary[0].upper() + summary[1:],
        findings=[finding for finding, _ in said],
    )


def _realized_volatility(bars: pd.DataFrame, interval: str, horizon: int) -> pd.Series:
    """Root of the summed squared log returns of each ``horizon`` bars in a row (what the
    volatility model forecasts), indexed by the last bar; none spans a gap."""
    pieces = []
    for run in unbroken_runs(bars, interval):
        returns = np.log(run["close"]).diff()
        pieces.append(np.sqrt((returns**2).rolling(horizon).sum()).dropna())
    return pd.concat(pieces) if pieces else pd.Series(dtype=float)


def _volatility_regime(
    forecast: VolatilityForecast, bars: pd.DataFrame
) -> tuple[Finding, str | None]:
    as_of = pd.Timestamp(forecast.bar_start_ts_ns, tz="UTC")
    bars = bars.loc[:as_of]
    windows = _realized_volatility(bars, forecast.interval, forecast.horizon)
    year = windows[windows.index > as_of - _YEAR].to_numpy()
    recent = float(windows.iloc[-1]) if len(windows) and windows.index[-1] == as_of else None
    full_year = bars.index[0] <= as_of - _YEAR
    days = _YEAR_DAYS if full_year else (as_of - bars.index[0]).days
    value = forecast.volatility
    numbers: dict[str, float | None] = {
        "forecast_volatility": value,
        "recent_volatility": recent,
        "percentile": None,
        "range_low": None,
        "range_high": None,
        "windows": float(len(year)),
        "history_days": float(days),
    }
    ahead, h = _bars(forecast.horizon), forecast.horizon
    if len(year) < _MIN_WINDOWS:
        text = (
            f"Too little history ({days} days) to place the volatility forecast for the next "
            f"{ahead}, {_percent(value)}, within a range."
        )
        return Finding(
            kind="volatility_regime", verdict="not_measured", numbers=numbers, text=text
        ), None
    low, high = float(year.min()), float(year.max())
    percentile = float(np.mean(year <= value) * 100)
    numbers |= {"percentile": percentile, "range_low": low, "range_high": high}
    whole = round(percentile)
    verdict: Verdict = (
        "calm" if whole < _CALM_BELOW else "elevated" if whole > _ELEVATED_ABOVE else "typical"
    )
    span = "the past year" if full_year else f"the past {days} days, less than a year of history"
    if value > high:
        standing, brief = f"above any {h}-bar volatility over {span}", "above its range"
    elif value < low:
        standing, brief = f"below any {h}-bar volatility over {span}", "below its range"
    else:
        standing = f"the {_ordinal(whole)} percentile of {h}-bar volatility over {span}"
        brief = f"{_ordinal(whole)} percentile"
    text = (
        f"Volatility looks {verdict}: over the next {ahead} it is forecast at {_percent(value)}, "
        f"{standing} ({_percent(low)} to {_percent(high)})"
    )
    if recent is not None:
        text += f"; the last {ahead} realized {_percent(recent)}"
    period = "the past year" if full_year else f"the past {days} days"
    return (
        Finding(kind="volatility_regime", verdict=verdict, numbers=numbers, text=text + "."),
        f"volatility {verdict} ({brief} of {period})",
    )


def _next_bar_range(forecast: ReturnForecast, close: float) -> tuple[Finding, str]:
    low, high = close * math.exp(forecast.q10), close * math.exp(forecast.q90)
    low_percent, high_percent = math.expm1(forecast.q10) * 100, math.expm1(forecast.q90) * 100
    numbers: dict[str, float | None] = {
        "close": close,
        "low": low,
        "high": high,
        "low_percent": low_percent,
        "high_percent": high_percent,
    }
    ahead = (
        f"next {forecast.interval} bar"
        if forecast.horizon == 1
        else f"next {forecast.horizon} {forecast.interval} bars"
    )
    text = (
        f"Over the {ahead} the model puts an 80% chance on a close between {_price(low)} and "
        f"{_price(high)}, {_signed_percent(low_percent)} to {_signed_percent(high_percent)} from "
        f"the last close of {_price(close)}."
    )
    brief = f"80% range for the {ahead} {_price(low)} to {_price(high)}"
    return Finding(kind="next_bar_range", verdict="range", numbers=numbers, text=text), brief


def _directional_edge(evidence: Evidence) -> tuple[Finding, str]:
    hit, p = evidence.direction, evidence.direction_p
    numbers: dict[str, float | None] = {"hit_rate": hit, "p_value": p}
    right = "" if hit is None else f" right {_share(hit)} of the time"
    if p is None:
        though = "" if hit is None else f" (it called up or down{right})"
        text = (
            f"Whether the model calls up or down better than a coin was not measured out of "
            f"sample{though}, so do not read its median as a call on the direction."
        )
        brief = "directional edge not measured"
        return Finding(
            kind="directional_edge", verdict="not_measured", numbers=numbers, text=text
        ), brief
    if p < _SIGNIFICANT:
        text = (
            f"Out of sample the model called up or down{right}, better than a coin ({_p_value(p)})."
        )
        brief = "a directional edge" + ("" if hit is None else f" ({_share(hit)} right)")
        return Finding(kind="directional_edge", verdict="edge", numbers=numbers, text=text), brief
    text = (
        f"The model has no directional edge: out of sample it called up or down{right}, no "
        f"better than a coin ({_p_value(p)}), so do not read its median as a call on the "
        "direction."
    )
    brief = "no directional edge"
    return Finding(kind="directional_edge", verdict="no_edge", numbers=numbers, text=text), brief


def _calibration(evidence: Evidence) -> tuple[Finding, str | None]:
    coverage = evidence.coverage_80
    numbers: dict[str, float | None] = {"coverage_80": coverage}
    if coverage is None:
        text = "How often outcomes fall inside its 80% ranges was not measured out of sample."
        return Finding(kind="calibration", verdict="not_measured", numbers=numbers, text=text), None
    shown = round(coverage * 100, 1)
    inside = f"{_share(coverage)} of outcomes fell inside its 80% ranges"
    verdict: Verdict
    brief: str | None
    if shown < _CALIBRATED[0]:
        verdict, brief = "too_narrow", "80% ranges too narrow"
        text = (
            f"Out of sample only {inside}: they are too narrow, so expect more surprises than "
            "they suggest."
        )
    elif shown > _CALIBRATED[1]:
        verdict, brief = "too_wide", "80% ranges too wide"
        text = f"Out of sample {inside}: they are wider than they need to be."
    else:
        verdict, brief = "calibrated", None
        text = f"Out of sample {inside}: they are well calibrated."
    return Finding(kind="calibration", verdict=verdict, numbers=numbers, text=text), brief


def _skill(
    returns: ReturnForecast | None,
    volatility: VolatilityForecast | None,
    returns_evidence: Evidence,
    volatility_evidence: Evidence,
) -> tuple[Finding, str | None]:
    parts: list[tuple[str, str, float | None]] = []
    if returns is not None:
        parts.append(("returns_dm_p", "return quantiles", returns_evidence.returns_dm_p))
    if volatility is not None:
        parts.append(
            ("volatility_dm_p", "volatility forecasts", volatility_evidence.volatility_dm_p)
        )
    numbers: dict[str, float | None] = {key: p for key, _, p in parts}
    clauses = []
    for _, what, p in parts:
        if p is None:
            clauses.append(f"how its {what} compare was not measured")
        elif p < _SIGNIFICANT:
            clauses.append(f"its {what} are better (Diebold-Mariano {_p_value(p)})")
        else:
            clauses.append(f"its {what} are not significantly better ({_p_value(p)})")
    measured = [p for _, _, p in parts if p is not None]
    if not measured:
        clauses = ["how its forecasts compare was not measured"]
    text = f"Against the best simple baseline out of sample, {' and '.join(clauses)}."
    better = [p for p in measured if p < _SIGNIFICANT]
    verdict: Verdict
    if not measured:
        verdict = "not_measured"
    elif len(better) == len(parts):
        verdict = "beats_baselines"
    elif not better:
        verdict = "no_better"
    else:
        verdict = "mixed"
    return Finding(kind="skill", verdict=verdict, numbers=numbers, text=text), None


def _bars(count: int) -> str:
    return "bar" if count == 1 else f"{count} bars"


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 11 <= number % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def _decimals(value: float) -> int:
    """One decimal from 1 up; below, two significant digits (a minute's volatility is small)."""
    # Rounded first: 0.09996 has two significant digits as "0.10", not as "0.100".
    shown = float(f"{abs(value):.2g}")
    if shown == 0 or shown >= 1:
        return 1
    return 1 - math.floor(math.log10(shown))


def _percent(fraction: float) -> str:
    """0.0236 -> "2.4%"; 0.00034 -> "0.034%"."""
    value = fraction * 100
    return f"{value:.{_decimals(value)}f}%"


def _signed_percent(value: float) -> str:
    """In percent already: 2.46 -> "+2.5%", -0.3 -> "-0.30%"."""
    text = f"{abs(value):.{_decimals(value)}f}"
    sign = "" if float(text) == 0 else "-" if value < 0 else "+"
    return f"{sign}{text}%"


def _share(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _price(value: float) -> str:
    """Cents from 1 up (thousands grouped); below, four significant digits."""
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.{3 - math.floor(math.log10(value))}f}"


def _p_value(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
