"""Schemathesis CLI hooks (``SCHEMATHESIS_HOOKS``) for the contract run in test_api_contract:
every case as a signed-in admin, so every operation is reached, from an address of its own, so
the per-address limits never hide deeper code.

The run shares its gateway with the rest of the suite, and schemathesis threads identifiers it
saw in responses into later requests (the user list's ids into disable and role changes, the key
list's kids into revocation). Accounts and signing keys that existed before the run belong to
other tests: a case aimed at one is aimed at an unknown one instead, and answers 404.

The one rule of a request the schema cannot carry is the password policy's list of common
passwords: only that refusal of a generated password is not a contract failure."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import asyncpg
import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData

from core.settings import Settings
from tests.serve.auth_api import new_ip
from tests.serve.fuzz_admins import Admins

# The hash of an admin's password carries its own parameters: default settings make one the
# gateway verifies.
_admins = Admins(
    Settings(database_url=os.environ["FINONE_CONTRACT_DATABASE_URL"]),
    os.environ["FINONE_CONTRACT_GATEWAY"],
)


async def _existing(database_url: str) -> tuple[frozenset[str], frozenset[str]]:
    conn = await asyncpg.connect(database_url)
    try:
        users = await conn.fetch("SELECT user_id::text AS id FROM users")
        kids = await conn.fetch("SELECT kid AS id FROM signing_keys")
    finally:
        await conn.close()
    return frozenset(row["id"] for row in users), frozenset(row["id"] for row in kids)


_bystander_users, _bystander_kids = asyncio.run(
    _existing(os.environ["FINONE_CONTRACT_DATABASE_URL"])
)


@schemathesis.hook
def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    parameters = case.path_parameters or {}
    if str(parameters.get("user_id")) in _bystander_users:
        parameters["user_id"] = str(uuid.uuid4())
    if str(parameters.get("kid")) in _bystander_kids:
        parameters["kid"] = f"unknown-{uuid.uuid4().hex[:12]}"


@schemathesis.hook
def filter_failure(
    context: Any, failure: Any, case: schemathesis.Case, response: schemathesis.Response
) -> bool:
    # The schema cannot list the 30,000 passwords too common to accept (serve/auth/passwords.py):
    # a schema-valid one is refused with 422 weak_password, as the policy says it must be.
    if isinstance(failure, RejectedPositiveData) and response.status_code == 422:
        try:
            return bool(response.json().get("code") != "weak_password")
        except ValueError:
            return True
    return True


# Cached for a minute, so a stateful scenario's steps share one admin; a fuzzed logout or
# password change ends it, and the 401 that follows fetches a new one.
@schemathesis.auth(refresh_interval=60, retry_on=[401])
class FreshAdmin:
    def get(self, case: schemathesis.Case, context: Any) -> str:
        return _admins.new_token()

    def set(self, case: schemathesis.Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
        case.headers.setdefault("X-Forwarded-For", new_ip())
