"""Walk-forward splits: train on the past, test on the window after it, never the other way.

An embargo of at least the target horizon sits between each training set and its test window:
the last training targets look ahead into the bars the test then scores, which would leak.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.errors import DatasetError

__all__ = ["Split", "walk_forward"]


@dataclass(frozen=True, slots=True)
class Split:
    """Row positions: training is ``[0, train_end)``, testing ``[test_start, test_end)``."""

    train_end: int
    test_start: int
    test_end: int


def walk_forward(
    rows: int, folds: int, test_size: int, embargo: int, min_train: int
) -> list[Split]:
    """``folds`` consecutive test windows at the end of the history, each with all that came
    before it (less the embargo) to train on."""
    if folds < 1 or test_size < 1 or embargo < 0:
        raise DatasetError("folds and test_size must be positive, embargo not negative")
    first_test = rows - folds * test_size
    if first_test - embargo < min_train:
        raise DatasetError(
            f"{rows} examples are too few for {folds} folds of {test_size} after at least "
            f"{min_train} training examples and an embargo of {embargo}"
        )
    return [
        Split(train_end=start - embargo, test_start=start, test_end=start + test_size)
        for start in range(first_test, rows, test_size)
    ]
