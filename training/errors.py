"""Problems with the data a model is asked to learn from, said so a person knows what to fix."""

from __future__ import annotations

from core.errors import PlatformError

__all__ = ["DatasetError"]


class DatasetError(PlatformError):
    """The history cannot make a dataset: too short, empty, or unusable values."""
