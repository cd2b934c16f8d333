"""Datasets read from the bars table, pooled across instruments."""

from __future__ import annotations

import pytest

from training.datasets import load_dataset
from training.errors import DatasetError
from training.features import FEATURES, TARGETS
from training.sample_data import load_sample_bars


async def test_pooled_dataset_from_the_bars_table(database_url: str) -> None:
    await load_sample_bars(database_url, ("IBM", "MSFT"))

    table = await load_dataset(database_url, ["alpaca:IBM", "alpaca:MSFT"], "1d")

    assert set(table["instrument"]) == {"alpaca:IBM", "alpaca:MSFT"}
    assert table.index.is_monotonic_increasing
    assert str(table.index.tz) == "UTC"
    assert list(table.columns) == [*FEATURES, *TARGETS, "instrument"]
    # 3,270 bars each, less 20 of look-back and 5 of look-ahead.
    assert (table["instrument"] == "alpaca:IBM").sum() == 3_270 - 25


async def test_missing_history_names_the_instrument_and_the_fix(database_url: str) -> None:
    with pytest.raises(DatasetError, match="no 1d bars for alpaca:NOPE: import some"):
        await load_dataset(database_url, ["alpaca:NOPE"], "1d")
