"""Input rules shared by the API's request models and query parameters."""

from __future__ import annotations

from typing import Annotated

import email_validator
from pydantic import AfterValidator, Field

__all__ = ["INSTRUMENT_PATTERN", "NAME_PATTERN", "Email"]

# ``venue:SYMBOL`` as the event schema writes instrument ids.
INSTRUMENT_PATTERN = r"^[a-z0-9_]{1,32}:[A-Za-z0-9._/-]{1,48}$"
# Names people give things (clients, watchlists): any text without control characters.
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


# An email is a sign-in name here: the platform sends no mail, so an address need not be
# deliverable, and one at a reserved domain (.test, .local) is as good as any other the schema's
# "format: email" allows. The library documents this list as the one to change.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()


def _normalized_email(value: str) -> str:
    return email_validator.validate_email(value, check_deliverability=False).normalized


Email = Annotated[
    str,
    Field(max_length=254, json_schema_extra={"format": "email"}, examples=["ann@example.com"]),
    AfterValidator(_normalized_email),
]
