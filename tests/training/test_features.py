"""Features never see the future; splits never let training touch what they test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.demo import stock_history
from training.errors import DatasetError
from training.features import FEATURES, LOOKBACK, TARGETS, make_features
from training.splits import walk_forward


def _bars(symbol: str = "IBM", rows: int = 400) -> pd.DataFrame:
    history = stock_history((symbol,)).head(rows)
    frame = history.set_index(pd.DatetimeIndex(history["date"], tz="UTC"))
    return frame[["open", "high", "low", "close", "volume"]].astype(float)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=LOOKBACK + 10, max_value=380),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_no_feature_at_t_depends_on_any_bar_after_t(cut: int, seed: int) -> None:
    bars = _bars()
    future = bars.copy()
    rng = np.random.default_rng(seed)
    later = future.index > future.index[cut]
    shock = rng.uniform(0.5, 2.0, size=later.sum())
    for column in ("open", "high", "low", "close"):
        future.loc[later, column] *= shock
    future.loc[later, "volume"] *= rng.uniform(0.1, 10.0, size=later.sum())

    original = make_features(bars, horizon=1, vol_horizon=5)
    altered = make_features(future, horizon=1, vol_horizon=5)

    # Up to t, the features are identical, however different the bars after t are.
    common = original.index[original.index <= bars.index[cut]]
    pd.testing.assert_frame_equal(
        original.loc[common, list(FEATURES)], altered.loc[common, list(FEATURES)]
    )


def test_targets_are_the_future_return_and_volatility() -> None:
    bars = _bars()
    table = make_features(bars, horizon=1, vol_horizon=5)
    t = table.index[10]
    position = bars.index.get_loc(t)
    closes = np.log(bars["close"].to_numpy())

    assert table.loc[t, "target_return"] == pytest.approx(closes[position + 1] - closes[position])
    future = np.diff(closes[position : position + 6])
    assert table.loc[t, "target_vol"] == pytest.approx(np.sqrt((future**2).sum()))
    assert list(table.columns) == [*FEATURES, *TARGETS]


def test_bad_histories_say_what_is_wrong() -> None:
    bars = _bars()
    flat = bars.copy()
    flat[["open", "high", "low", "close"]] = 10.0
    flat["volume"] = 1000.0

    with pytest.raises(DatasetError, match="need at least 27 bars"):
        make_features(bars.head(20))
    with pytest.raises(DatasetError, match="no bar has every feature"):
        make_features(flat)
    with pytest.raises(DatasetError, match="time order"):
        make_features(bars.iloc[::-1])
    broken = bars.copy()
    broken.iloc[50, 3] = np.nan
    with pytest.raises(DatasetError, match="positive finite"):
        make_features(broken)
    with pytest.raises(DatasetError, match="lack the column"):
        make_features(bars.drop(columns=["volume"]))


def test_walk_forward_trains_only_before_an_embargo_and_tests_everything_once() -> None:
    splits = walk_forward(rows=1_000, folds=4, test_size=100, embargo=5, min_train=300)

    assert [(s.test_start, s.test_end) for s in splits] == [
        (600, 700),
        (700, 800),
        (800, 900),
        (900, 1_000),
    ]
    for split in splits:
        assert split.train_end == split.test_start - 5
    with pytest.raises(DatasetError, match="too few"):
        walk_forward(rows=500, folds=4, test_size=100, embargo=5, min_train=300)
