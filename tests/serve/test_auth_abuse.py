"""Anti-automation and enumeration: rate limits per account and per address, identical answers
for unknown accounts and wrong passwords, oversized bodies."""

from __future__ import annotations

from starlette.requests import Request

from core.settings import Settings
from serve.dependencies import client_ip_of
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_email, new_ip


async def test_unknown_account_and_wrong_password_get_the_same_answer(
    auth_api: AuthApi, user: Session
) -> None:
    unknown = await auth_api.login(new_email(), "some password here")
    wrong = await auth_api.login(user.email, "some password here")

    assert unknown.status_code == wrong.status_code == 400
    assert (
        unknown.json()
        == wrong.json()
        == {
            "code": "invalid_grant",
            "message": "incorrect email or password",
            "details": None,
        }
    )
    assert unknown.headers.get("www-authenticate") == wrong.headers.get("www-authenticate")


async def test_account_is_throttled_after_repeated_failures_from_many_addresses(
    auth_api: AuthApi, user: Session, gateway_settings: Settings
) -> None:
    for _ in range(gateway_settings.login_failures_per_account):
        assert (await auth_api.login(user.email, "not the password")).status_code == 400

    throttled = await auth_api.login(user.email, PASSWORD)

    assert throttled.status_code == 429
    assert throttled.json()["code"] == "rate_limited"
    retry_after = int(throttled.headers["retry-after"])
    assert 0 < retry_after <= gateway_settings.login_failure_window_s
    # Temporary and per account: other accounts and existing sessions are untouched.
    assert (await auth_api.me(user.access_token)).status_code == 200
    assert (await auth_api.signed_up()).access_token


async def test_unknown_account_is_throttled_exactly_like_a_real_one(
    auth_api: AuthApi, gateway_settings: Settings
) -> None:
    email = new_email()
    for _ in range(gateway_settings.login_failures_per_account):
        assert (await auth_api.login(email, "not the password")).status_code == 400

    assert (await auth_api.login(email, "not the password")).status_code == 429


async def test_one_address_is_throttled_across_accounts_and_grants(
    auth_api: AuthApi, gateway_settings: Settings
) -> None:
    ip = new_ip()
    for _ in range(gateway_settings.auth_requests_per_ip):
        response = await auth_api.token({"grant_type": "refresh_token", "refresh_token": "x"}, ip)
        assert response.status_code == 400

    throttled = await auth_api.login(new_email(), PASSWORD, ip)
    registration = await auth_api.register(new_email(), PASSWORD, ip)

    assert throttled.status_code == registration.status_code == 429
    assert int(throttled.headers["retry-after"]) <= gateway_settings.auth_request_window_s
    assert (await auth_api.login(new_email(), PASSWORD, new_ip())).status_code == 400


async def test_audit_records_the_hop_the_trusted_proxy_saw_not_what_the_client_claims(
    auth_api: AuthApi, admin: Session
) -> None:
    ip = new_ip()

    response = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/register",
        json={"email": new_email(), "password": PASSWORD},
        headers={"X-Forwarded-For": f"203.0.113.9, {ip}"},
    )

    audit = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit",
        params={"user_id": response.json()["user_id"]},
        headers=admin.headers,
    )
    assert audit.json()["items"][0]["client_ip"] == ip


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def test_client_address_trusts_x_forwarded_for_only_from_trusted_proxies() -> None:
    def address(peer: str, forwarded: str | None) -> str:
        return client_ip_of(_request(peer, forwarded), ["127.0.0.1"])

    assert address("198.51.100.7", "10.0.0.1") == "198.51.100.7"
    assert address("127.0.0.1", "10.0.0.1") == "10.0.0.1"
    assert address("127.0.0.1", "10.0.0.1, 10.0.0.2") == "10.0.0.2"
    assert address("127.0.0.1", "10.0.0.1, 127.0.0.1") == "10.0.0.1"
    assert address("127.0.0.1", "not-an-ip") == "127.0.0.1"
    assert address("127.0.0.1", None) == "127.0.0.1"


async def test_oversized_bodies_are_rejected_with_413(
    auth_api: AuthApi, gateway_settings: Settings
) -> None:
    too_big = b"x" * (gateway_settings.max_request_bytes + 1)

    declared = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/register",
        content=too_big,
        headers={"Content-Type": "application/json", "X-Forwarded-For": new_ip()},
    )

    async def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(too_big), 65_536):
            yield too_big[start : start + 65_536]

    streamed = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/register",
        content=chunks(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": new_ip()},
    )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
    assert (await auth_api.register(new_email(), PASSWORD)).status_code == 201


async def test_text_postgres_cannot_store_is_invalid_input_not_a_server_error(
    auth_api: AuthApi, user: Session
) -> None:
    login = await auth_api.login("nul\x00@example.com", PASSWORD)
    client = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "bot\x00", "scopes": ["market:read"]},
        headers=user.headers,
    )

    for response in (login, client):
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_request"


def test_client_address_reads_every_x_forwarded_for_line_in_order() -> None:
    # HAProxy's `option forwardfor` adds a line of its own after whatever the client sent: the
    # first line is the client's claim, the last what the trusted hop saw.
    lines = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-for", b"10.0.0.7")]
    request = Request({"type": "http", "client": ("127.0.0.1", 5000), "headers": lines})
    assert client_ip_of(request, ["127.0.0.1"]) == "10.0.0.7"
