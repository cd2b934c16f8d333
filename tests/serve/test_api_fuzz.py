"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis), as a signed-in
admin so every route is reached: no 5xx, and every response conforms to the schema.

Operations are driven one by one with Hypothesis rather than through schemathesis' pytest
plugin, whose fixture support does not work with pytest 9.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import Settings
from tests.serve.auth_api import new_ip
from tests.serve.champions import Champions
from tests.serve.fuzz_admins import Admins

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_never_fails_and_always_answers_per_schema(
    gateway_url: str,
    gateway_settings: Settings,
    retrain_scheduler: None,
    second_champions: Champions,
) -> None:
    admins = Admins(gateway_settings, gateway_url)
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def fuzz(case: schemathesis.Case) -> None:
            # Each case from its own address, so the per-address limit never hides deeper code.
            headers = {"Authorization": f"Bearer {admins.new_token()}", "X-Forwarded-For": new_ip()}
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error
