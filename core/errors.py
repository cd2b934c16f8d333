"""The error the control plane raises when the platform cannot start or be reached."""

from __future__ import annotations

__all__ = ["PlatformError"]


class PlatformError(Exception):
    """A failure the user can act on; its message is one line that says what to do."""
