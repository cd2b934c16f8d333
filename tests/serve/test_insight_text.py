"""What an insight says, from a forecast, bars and the champions' out-of-sample record: each
finding's verdict, numbers and sentence, with no server involved."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.events import Finding, Forecast, Insight, ReturnForecast, VolatilityForecast
from serve.inference.insights import Evidence, history_bars, make_insight

DAY = pd.Timedelta(days=1)
NO_EDGE = Evidence(
    direction=0.516, direction_p=0.21, coverage_80=0.797, returns_dm_p=0.003, volatility_dm_p=0.31
)
EDGE = Evidence(direction=0.5314, direction_p=0.012, coverage_80=0.701)
UNRECORDED = Evidence()


def _bars(closes: np.ndarray, end: str = "2013-03-01") -> pd.DataFrame:
    index = pd.date_range(end=pd.Timestamp(end, tz="UTC"), periods=len(closes), freq="D")
    return pd.DataFrame(
        {
            "open": closes,
            "high": closes * 1.01,
            "low": closes * 0.99,
            "close": closes,
            "volume": 1e3,
        },
        index=index,
    )


def _walk(count: int, step: float = 0.01, seed: int = 3) -> pd.DataFrame:
    return _bars(100 * np.exp(np.random.default_rng(seed).normal(0, step, count).cumsum()))


def _forecast(
    bars: pd.DataFrame,
    *,
    q10: float = -0.0131,
    q90: float = 0.0142,
    volatility: float | None = 0.0236,
    horizon: int = 1,
    returns: bool = True,
) -> Forecast:
    start = bars.index[-1].value
    return Forecast(
        instrument="alpaca:IBM",
        exchange_ts_ns=1,
        receive_ts_ns=1,
        returns=ReturnForecast(
            model="finone-returns",
            version="3",
            interval="1d",
            horizon=horizon,
            bar_start_ts_ns=start,
            q10=q10,
            q50=0.0004,
            q90=q90,
            prob_up=0.52,
        )
        if returns
        else None,
        volatility=None
        if volatility is None
        else VolatilityForecast(
            model="finone-volatility",
            version="4",
            interval="1d",
            horizon=5,
            bar_start_ts_ns=start,
            volatility=volatility,
        ),
    )


def _insight(
    bars: pd.DataFrame, evidence: Evidence = UNRECORDED, forecast: Forecast | None = None
) -> Insight:
    made = _forecast(bars) if forecast is None else forecast
    return make_insight(made, {"1d": bars}, evidence, evidence)


def _finding(insight: Insight, kind: str) -> Finding:
    (found,) = [finding for finding in insight.findings if finding.kind == kind]
    return found


def test_insight_with_a_model_without_edge_says_it_has_none() -> None:
    insight = _insight(_walk(400), NO_EDGE)

    edge = _finding(insight, "directional_edge")
    assert edge.verdict == "no_edge"
    assert edge.numbers == {"hit_rate": 0.516, "p_value": 0.21}
    assert edge.text == (
        "The model has no directional edge: out of sample it called up or down right 51.6% of "
        "the time, no better than a coin (p = 0.21), so do not read its median as a call on the "
        "direction."
    )
    assert insight.summary.endswith("; no directional edge.")


def test_insight_with_a_model_with_edge_says_so_with_its_hit_rate() -> None:
    insight = _insight(_walk(400), EDGE)

    edge = _finding(insight, "directional_edge")
    assert edge.verdict == "edge"
    assert edge.text == (
        "Out of sample the model called up or down right 53.1% of the time, better than a coin "
        "(p = 0.012)."
    )
    assert insight.summary.endswith("; a directional edge (53.1% right); 80% ranges too narrow.")


def test_insight_with_scores_never_recorded_says_not_measured() -> None:
    insight = _insight(_walk(400))

    edge, calibration, skill = (
        _finding(insight, kind) for kind in ("directional_edge", "calibration", "skill")
    )
    assert (edge.verdict, calibration.verdict, skill.verdict) == ("not_measured",) * 3
    assert edge.numbers == {"hit_rate": None, "p_value": None}
    assert "was not measured out of sample" in edge.text
    assert "do not read its median as a call" in edge.text
    assert calibration.text == (
        "How often outcomes fall inside its 80% ranges was not measured out of sample."
    )
    assert skill.text == (
        "Against the best simple baseline out of sample, how its forecasts compare was not "
        "measured."
    )
    # A hit rate without its p-value is told, but never taken for an edge.
    partly = _finding(_insight(_walk(400), Evidence(direction=0.55)), "directional_edge")
    assert partly.verdict == "not_measured"
    assert "(it called up or down right 55.0% of the time)" in partly.text


@pytest.mark.parametrize(
    ("coverage", "verdict", "says"),
    [
        (0.701, "too_narrow", "only 70.1% of outcomes fell inside its 80% ranges: they are too "),
        (0.7496, "calibrated", "75.0% of outcomes fell inside its 80% ranges: they are well "),
        (0.797, "calibrated", "79.7% of outcomes fell inside its 80% ranges: they are well "),
        (0.923, "too_wide", "92.3% of outcomes fell inside its 80% ranges: they are wider "),
    ],
)
def test_calibration_is_judged_on_the_coverage_as_shown(
    coverage: float, verdict: str, says: str
) -> None:
    finding = _finding(_insight(_walk(400), Evidence(coverage_80=coverage)), "calibration")

    assert finding.verdict == verdict
    assert says in finding.text
    assert finding.numbers == {"coverage_80": coverage}


def test_next_bar_range_is_told_in_prices_and_percentages_rounded_as_shown() -> None:
    bars = _bars(np.full(400, 200.0) * np.exp(np.tile([0.0, 0.01], 200)))
    close = float(bars["close"].iloc[-1])
    insight = _insight(bars, forecast=_forecast(bars, q10=math.log(0.975), q90=math.log(1.0251)))

    found = _finding(insight, "next_bar_range")
    assert close == pytest.approx(202.01)
    assert found.text == (
        "Over the next 1d bar the model puts an 80% chance on a close between 196.96 and "
        "207.08, -2.5% to +2.5% from the last close of 202.01."
    )
    assert found.numbers["low"] == pytest.approx(close * 0.975)
    assert found.numbers["high_percent"] == pytest.approx(2.51)
    assert "80% range for the next 1d bar 196.96 to 207.08" in insight.summary
    # Large prices are grouped, small ones keep four significant digits, several bars are said.
    large_bars = _bars(np.full(400, 97_012.345))
    large = _insight(large_bars, forecast=_forecast(large_bars, horizon=3))
    assert "between 95,749.77 and 98,399.75" in _finding(large, "next_bar_range").text
    assert "Over the next 3 1d bars" in _finding(large, "next_bar_range").text
    small_bars = _bars(np.full(400, 0.0123456))
    small = _insight(small_bars, forecast=_forecast(small_bars, q10=-0.001, q90=0.0005))
    assert (
        "between 0.01233 and 0.01235, -0.10% to +0.050%" in _finding(small, "next_bar_range").text
    )


def _two_regimes(days: int) -> pd.DataFrame:
    """Daily closes alternating up and down: by 1% a day in the older half, 2% in the newer,
    so every 5-day window realizes sqrt(5)% or 2 sqrt(5)% (one straddling window between)."""
    steps = np.where(np.arange(days) < days // 2, 0.01, 0.02) * np.tile([1, -1], days)[:days]
    return _bars(100 * np.exp(steps.cumsum()))


def test_volatility_regime_places_the_forecast_within_the_past_years_range() -> None:
    bars = _two_regimes(500)
    calm, high = math.sqrt(5) * 0.01, math.sqrt(5) * 0.02

    insight = _insight(bars, forecast=_forecast(bars, volatility=0.03))
    typical = _finding(insight, "volatility_regime")
    above = _finding(_insight(bars, forecast=_forecast(bars, volatility=0.05)), "volatility_regime")
    below = _finding(_insight(bars, forecast=_forecast(bars, volatility=0.02)), "volatility_regime")

    # The year's 365 windows end on days 135 to 499: the 115 ending before the switch (day
    # 250) are calm, and of the four straddling it only the calmest is below 3%.
    assert typical.numbers["windows"] == 365 and typical.numbers["history_days"] == 365
    assert typical.numbers["percentile"] == pytest.approx(100 * 116 / 365)
    assert typical.numbers["range_low"] == pytest.approx(calm)
    assert typical.numbers["range_high"] == pytest.approx(high)
    assert typical.numbers["recent_volatility"] == pytest.approx(high)
    assert typical.verdict == "typical"
    assert typical.text == (
        "Volatility looks typical: over the next 5 bars it is forecast at 3.0%, the 32nd "
        "percentile of 5-bar volatility over the past year (2.2% to 4.5%); the last 5 bars "
        "realized 4.5%."
    )
    assert insight.summary == (
        "Volatility typical (32nd percentile of the past year); 80% range for the next 1d bar "
        "98.70 to 101.43; directional edge not measured."
    )
    assert above.verdict == "elevated"
    assert "it is forecast at 5.0%, above any 5-bar volatility over the past year" in above.text
    assert below.verdict == "calm"
    assert "below any 5-bar volatility over the past year" in below.text


def test_volatility_regime_with_less_than_a_year_of_history_says_so() -> None:
    bars = _walk(60)

    insight = _insight(bars)
    regime = _finding(insight, "volatility_regime")

    assert regime.numbers["history_days"] == 59
    assert "over the past 59 days, less than a year of history (" in regime.text
    assert "percentile of the past 59 days)" in insight.summary
    # Too short to compare at all: said, and no range made up.
    short = _finding(_insight(_walk(22)), "volatility_regime")
    assert short.verdict == "not_measured"
    assert short.numbers["percentile"] is None and short.numbers["range_low"] is None
    assert short.text == (
        "Too little history (21 days) to place the volatility forecast for the next 5 bars, "
        "2.4%, within a range."
    )


def test_volatility_windows_never_span_a_gap_in_the_bars() -> None:
    before, after = _walk(200, seed=1), _walk(200, seed=2, step=0.002)
    # A month without bars, and a price a third lower after it: no window may read that jump.
    after = after.set_axis(after.index + 30 * DAY).mul(0.66)
    bars = pd.concat([before[before.index < after.index[0] - 30 * DAY], after])

    regime = _finding(_insight(bars), "volatility_regime")

    assert regime.numbers["range_high"] is not None and regime.numbers["range_high"] < 0.1


def test_insight_is_the_same_for_the_same_bars_and_models() -> None:
    bars = _walk(400)

    first, again = _insight(bars, NO_EDGE), _insight(bars.copy(), NO_EDGE)

    assert first == again
    # Stamped with the bar it reads, not the moment it was made.
    assert first.exchange_ts_ns == first.receive_ts_ns == bars.index[-1].value


def test_insight_without_a_volatility_champion_reads_the_returns_model_alone() -> None:
    bars = _walk(400)
    insight = _insight(bars, NO_EDGE, _forecast(bars, volatility=None))

    assert [f.kind for f in insight.findings] == [
        "next_bar_range",
        "directional_edge",
        "calibration",
        "skill",
    ]
    assert insight.volatility is None and insight.returns is not None
    skill = _finding(insight, "skill")
    assert skill.verdict == "beats_baselines"
    assert skill.numbers == {"returns_dm_p": 0.003}
    assert skill.text == (
        "Against the best simple baseline out of sample, its return quantiles are better "
        "(Diebold-Mariano p = 0.003)."
    )


def test_skill_of_both_models_is_told_apart() -> None:
    skill = _finding(_insight(_walk(400), NO_EDGE), "skill")

    assert skill.verdict == "mixed"
    assert skill.text.endswith(
        "its return quantiles are better (Diebold-Mariano p = 0.003) and its volatility "
        "forecasts are not significantly better (p = 0.31)."
    )


def test_history_bars_hold_a_year_of_windows_capped_for_short_bars() -> None:
    assert history_bars("1d", 5) == 371
    assert history_bars("1h", 5) == 365 * 24 + 6
    assert history_bars("1m", 5) == 10_000
