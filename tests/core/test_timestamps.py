from __future__ import annotations

import pytest

from core.timestamps import rfc3339_ns

BASE = 1_704_205_800 * 1_000_000_000  # 2024-01-02T14:30:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T14:30:00Z", BASE),
        ("2024-01-02T14:30:00.123456789Z", BASE + 123_456_789),
        ("2024-01-02t14:30:00.5z", BASE + 500_000_000),
        ("2024-01-02 14:30:00.000001Z", BASE + 1_000),
        ("2024-01-02T16:30:00+02:00", BASE),
        ("2024-01-02T09:00:00.25-05:30", BASE + 250_000_000),
        # Below a nanosecond: truncated, never rounded up into the next nanosecond.
        ("2024-01-02T14:30:00.1234567899Z", BASE + 123_456_789),
    ],
)
def test_rfc3339_ns_with_valid_time_is_exact(text: str, expected: int) -> None:
    assert rfc3339_ns(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-02T14:30:00",
        "2024-01-02T14:30:00.Z",
        "2024-02-30T14:30:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T14:30:00+24:00",
        "2024-01-02T14:30:00.１Z",
        "yesterday",
        "",
    ],
)
def test_rfc3339_ns_with_invalid_text_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        rfc3339_ns(text)
