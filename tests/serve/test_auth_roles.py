"""Roles: users, operators and admins each reach what their role allows, and no more."""

from __future__ import annotations

import uuid

from tests.serve.auth_api import AuthApi, Session


async def _get(auth_api: AuthApi, path: str, session: Session) -> int:
    response = await auth_api.http.get(f"{auth_api.url}{path}", headers=session.headers)
    return response.status_code


async def test_user_is_refused_operator_and_admin_endpoints_with_403(
    auth_api: AuthApi, user: Session
) -> None:
    for path, role in (("/v1/ops/services", "operator"), ("/v1/admin/users", "admin")):
        response = await auth_api.http.get(f"{auth_api.url}{path}", headers=user.headers)
        assert response.status_code == 403
        assert response.json() == {
            "code": "forbidden",
            "message": f"this needs the {role} role",
            "details": None,
        }


async def test_operator_reaches_operations_but_not_administration(
    auth_api: AuthApi, operator: Session
) -> None:
    services = await auth_api.http.get(f"{auth_api.url}/v1/ops/services", headers=operator.headers)

    assert services.status_code == 200
    assert {c["name"] for c in services.json()["checks"]} == {"redis", "postgres", "mlflow"}
    assert await _get(auth_api, "/v1/admin/users", operator) == 403
    assert await _get(auth_api, "/v1/admin/audit", operator) == 403


async def test_admin_reaches_everything(auth_api: AuthApi, admin: Session) -> None:
    assert await _get(auth_api, "/v1/ops/services", admin) == 200
    assert await _get(auth_api, "/v1/admin/users", admin) == 200
    assert await _get(auth_api, "/v1/admin/audit", admin) == 200


async def test_role_change_outdates_old_tokens_and_refresh_brings_the_new_role(
    auth_api: AuthApi, user: Session, admin: Session
) -> None:
    changed = await auth_api.http.put(
        f"{auth_api.url}/v1/admin/users/{user.user_id}/role",
        json={"role": "operator"},
        headers=admin.headers,
    )

    assert changed.status_code == 200
    assert changed.json()["role"] == "operator"
    assert (await auth_api.me(user.access_token)).status_code == 401
    refreshed = await auth_api.refresh(user.refresh_token)
    assert refreshed.status_code == 200
    assert "operations" in refreshed.json()["scope"].split()
    promoted = Session(**{**user.__dict__, "access_token": refreshed.json()["access_token"]})
    assert await _get(auth_api, "/v1/ops/services", promoted) == 200
    audit = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/audit",
        params={"user_id": user.user_id, "event": "role_changed"},
        headers=admin.headers,
    )
    entry = audit.json()["items"][0]
    assert entry["details"] == {"from": "user", "to": "operator"}
    assert entry["actor_id"] == admin.user_id


async def test_admin_cannot_demote_or_disable_themselves(auth_api: AuthApi, admin: Session) -> None:
    base = f"{auth_api.url}/v1/admin/users/{admin.user_id}"

    demote = await auth_api.http.put(f"{base}/role", json={"role": "user"}, headers=admin.headers)
    disable = await auth_api.http.post(f"{base}/disable", headers=admin.headers)

    assert demote.status_code == disable.status_code == 409
    assert demote.json()["code"] == "cannot_modify_self"
    assert await _get(auth_api, "/v1/admin/users", admin) == 200


async def test_admin_actions_on_unknown_or_malformed_user_ids(
    auth_api: AuthApi, admin: Session
) -> None:
    unknown = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/users/{uuid.uuid4()}/disable", headers=admin.headers
    )
    malformed = await auth_api.http.post(
        f"{auth_api.url}/v1/admin/users/not-a-uuid/disable", headers=admin.headers
    )
    bad_role = await auth_api.http.put(
        f"{auth_api.url}/v1/admin/users/{uuid.uuid4()}/role",
        json={"role": "root"},
        headers=admin.headers,
    )

    assert unknown.status_code == 404
    assert unknown.json()["code"] == "user_not_found"
    assert malformed.status_code == bad_role.status_code == 422


async def test_user_list_pages_through_every_user_once(auth_api: AuthApi, admin: Session) -> None:
    for _ in range(3):
        await auth_api.signed_up()
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await auth_api.http.get(
            f"{auth_api.url}/v1/admin/users", params=params, headers=admin.headers
        )
        assert page.status_code == 200
        seen += [u["email"] for u in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) >= 4
    assert seen == sorted(seen)
    bad = await auth_api.http.get(
        f"{auth_api.url}/v1/admin/users", params={"cursor": "%%%"}, headers=admin.headers
    )
    # Not a cursor's shape (the schema says which): refused like any invalid parameter.
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_request"
