"""Input rules shared by the API's request models and query parameters."""

from __future__ import annotations

__all__ = ["INSTRUMENT_PATTERN", "NAME_PATTERN"]

# ``venue:SYMBOL`` as the event schema writes instrument ids.
INSTRUMENT_PATTERN = r"^[a-z0-9_]{1,32}:[A-Za-z0-9._/-]{1,48}$"
# Names people give things (clients, watchlists): any text without control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
