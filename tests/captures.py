"""Where the real recorded exchange traffic lies (``../shared/captures``, beside the checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["CAPTURES", "needs_captures"]

CAPTURES = Path(__file__).resolve().parents[1].parent / "shared" / "captures"
needs_captures = pytest.mark.skipif(not CAPTURES.exists(), reason="../shared/captures is absent")
