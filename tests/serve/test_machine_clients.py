"""Machine clients: OAuth2 client credentials created by a user, scoped and revocable."""

from __future__ import annotations

from typing import Any

from tests.serve.auth_api import AuthApi, Session


async def _create(auth_api: AuthApi, owner: Session, scopes: list[str]) -> dict[str, Any]:
    response = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "price bot", "scopes": scopes},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _client_token(auth_api: AuthApi, client: dict[str, Any], **form: str) -> Any:
    return await auth_api.token(
        {"grant_type": "client_credentials", **form},
        auth=(client["client_id"], client["client_secret"]),
    )


async def test_client_gets_a_token_with_its_scopes_via_basic_auth(
    auth_api: AuthApi, user: Session
) -> None:
    client = await _create(auth_api, user, ["market:read", "stream:read"])

    response = await _client_token(auth_api, client)

    assert response.status_code == 200, response.text
    token = response.json()
    assert token["scope"] == "market:read stream:read"
    assert token["refresh_token"] is None
    assert response.headers["cache-control"] == "no-store"
    me = (await auth_api.me(token["access_token"])).json()
    assert me["user_id"] == user.user_id
    assert me["client_id"] == client["client_id"]
    assert me["scopes"] == ["market:read", "stream:read"]


async def test_client_secret_post_works_and_narrower_scope_can_be_asked_for(
    auth_api: AuthApi, user: Session
) -> None:
    client = await _create(auth_api, user, ["market:read", "predictions:read"])

    response = await auth_api.token(
        {
            "grant_type": "client_credentials",
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
            "scope": "predictions:read",
        }
    )

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "predictions:read"


async def test_client_asking_for_a_scope_it_was_not_granted_is_refused(
    auth_api: AuthApi, user: Session
) -> None:
    client = await _create(auth_api, user, ["market:read"])

    for scope in ("stream:read", "admin", "made:up"):
        response = await _client_token(auth_api, client, scope=scope)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_scope"


async def test_wrong_secret_or_unknown_client_is_invalid_client(
    auth_api: AuthApi, user: Session
) -> None:
    client = await _create(auth_api, user, ["market:read"])

    wrong = await _client_token(auth_api, {**client, "client_secret": "guess"})
    unknown = await _client_token(auth_api, {**client, "client_id": "fos_nobody"})

    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_client"


async def test_client_token_cannot_manage_the_account(auth_api: AuthApi, user: Session) -> None:
    client = await _create(auth_api, user, ["market:read"])
    token = (await _client_token(auth_api, client)).json()["access_token"]

    response = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "bot spawning bots", "scopes": ["market:read"]},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 403
    assert response.json()["message"] == "the token lacks the 'account' scope"


async def test_user_cannot_grant_a_client_more_than_their_role_holds(
    auth_api: AuthApi, user: Session, operator: Session
) -> None:
    refused = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "ops bot", "scopes": ["operations"]},
        headers=user.headers,
    )
    account_scope = await auth_api.http.post(
        f"{auth_api.url}/v1/auth/clients",
        json={"name": "sneaky", "scopes": ["account"]},
        headers=operator.headers,
    )
    ops_client = await _create(auth_api, operator, ["operations"])
    ops_token = (await _client_token(auth_api, ops_client)).json()["access_token"]

    assert refused.status_code == account_scope.status_code == 403
    assert refused.json()["code"] == "scope_not_grantable"
    services = await auth_api.http.get(
        f"{auth_api.url}/v1/ops/services", headers={"Authorization": f"Bearer {ops_token}"}
    )
    assert services.status_code == 200


async def test_revoked_client_loses_its_tokens_at_once(auth_api: AuthApi, user: Session) -> None:
    client = await _create(auth_api, user, ["market:read"])
    token = (await _client_token(auth_api, client)).json()["access_token"]
    listed = await auth_api.http.get(f"{auth_api.url}/v1/auth/clients", headers=user.headers)
    assert [c["client_id"] for c in listed.json()] == [client["client_id"]]
    assert "client_secret" not in listed.text

    revoked = await auth_api.http.delete(
        f"{auth_api.url}/v1/auth/clients/{client['client_id']}", headers=user.headers
    )

    assert revoked.status_code == 204
    assert (await auth_api.me(token)).status_code == 401
    assert (await _client_token(auth_api, client)).status_code == 401
    again = await auth_api.http.delete(
        f"{auth_api.url}/v1/auth/clients/{client['client_id']}", headers=user.headers
    )
    assert again.status_code == 404


async def test_disabling_the_owner_stops_their_clients(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    client = await _create(auth_api, user, ["market:read"])
    token = (await _client_token(auth_api, client)).json()["access_token"]

    await auth_api.http.post(
        f"{auth_api.url}/v1/admin/users/{user.user_id}/disable", headers=admin.headers
    )

    assert (await auth_api.me(token)).status_code == 401
    assert (await _client_token(auth_api, client)).status_code == 401


async def test_another_user_cannot_revoke_my_client(auth_api: AuthApi, user: Session) -> None:
    client = await _create(auth_api, user, ["market:read"])
    stranger = await auth_api.signed_up()

    response = await auth_api.http.delete(
        f"{auth_api.url}/v1/auth/clients/{client['client_id']}", headers=stranger.headers
    )

    assert response.status_code == 404
    assert (await _client_token(auth_api, client)).status_code == 200
