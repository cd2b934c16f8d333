"""Roles, the scopes each role holds, and the scopes a machine client may be granted.

A user's access token carries every scope of the user's role. A machine client's token carries
the scopes the client was created with, limited to what its owner's role holds today.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Role", "Scope", "ROLE_SCOPES", "CLIENT_GRANTABLE_SCOPES", "grantable_scopes"]


class Role(StrEnum):
    user = "user"
    operator = "operator"
    admin = "admin"


class Scope(StrEnum):
    market_read = "market:read"
    stream_read = "stream:read"
    predictions_read = "predictions:read"
    # Managing one's own account, watchlists, alerts and machine clients: people only.
    account = "account"
    operations = "operations"
    admin = "admin"


_USER_SCOPES = frozenset(
    {Scope.market_read, Scope.stream_read, Scope.predictions_read, Scope.account}
)
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.user: _USER_SCOPES,
    Role.operator: _USER_SCOPES | {Scope.operations},
    Role.admin: _USER_SCOPES | {Scope.operations, Scope.admin},
}
CLIENT_GRANTABLE_SCOPES = frozenset(
    {Scope.market_read, Scope.stream_read, Scope.predictions_read, Scope.operations}
)


def grantable_scopes(owner_role: Role) -> frozenset[Scope]:
    """What a client owned by someone with ``owner_role`` may hold."""
    return ROLE_SCOPES[owner_role] & CLIENT_GRANTABLE_SCOPES
