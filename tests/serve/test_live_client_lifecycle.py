"""How one live-feed connection ends, on a stand-in socket: a peer that never answers the close
frame (half-open, or gone without a FIN) must not keep its connection, and a replica shutting
down must still be able to cancel one."""

from __future__ import annotations

import asyncio

import pytest
from starlette.websockets import WebSocketState

from core.settings import Settings
from serve.auth.access_tokens import Principal
from serve.auth.roles import Role, Scope
from serve.live.client import LiveClient
from serve.live.protocol import CLOSE_REVOKED


class _SilentPeer:
    """A WebSocket whose peer never says anything again, not even its half of a close."""

    def __init__(self) -> None:
        self.application_state = WebSocketState.CONNECTED
        self.closed_with: tuple[int, str] | None = None

    async def receive(self) -> dict[str, object]:
        await asyncio.Future()
        raise AssertionError("unreachable")

    async def send_text(self, text: str) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.application_state = WebSocketState.DISCONNECTED


class _Members:
    def __init__(self) -> None:
        self.members: set[LiveClient] = set()

    def add(self, client: LiveClient) -> None:
        self.members.add(client)

    def discard(self, client: LiveClient) -> None:
        self.members.discard(client)


class _Counter:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def inc(self, tags: dict[str, str]) -> None:
        self.reasons.append(tags["reason"])


class _Metrics:
    def __init__(self) -> None:
        self.disconnects = _Counter()


class _Hub:
    def __init__(self) -> None:
        self.revocation_watch = _Members()
        self.heartbeats = _Members()
        self.metrics = _Metrics()
        self.unsubscribed: list[str] = []

    def unsubscribe(self, client: LiveClient, keys: list[str]) -> None:
        self.unsubscribed += keys


class _Resources:
    settings = Settings(environment="development")


def _client() -> tuple[LiveClient, _SilentPeer, _Hub]:
    principal = Principal(
        user_id="u1",
        role=Role.user,
        scopes=frozenset({Scope.stream_read}),
        expires_at=2**40,
        session_version=1,
        session_id="s1",
    )
    peer, hub = _SilentPeer(), _Hub()
    client = LiveClient(peer, principal, _Resources(), hub)  # type: ignore[arg-type]
    return client, peer, hub


async def test_a_revoked_connection_ends_though_its_peer_never_answers_the_close() -> None:
    client, peer, hub = _client()
    running = asyncio.create_task(client.run())
    await asyncio.sleep(0.01)
    assert hub.heartbeats.members == {client}

    client.revoke("the session has ended; log in again")
    await asyncio.wait_for(running, 2)

    assert peer.closed_with == (CLOSE_REVOKED, "the session has ended; log in again")
    assert hub.heartbeats.members == hub.revocation_watch.members == set()
    assert hub.metrics.disconnects.reasons == ["revoked"]
    assert not running.cancelled()


async def test_a_connection_cancelled_from_outside_is_cancelled_and_cleaned_up() -> None:
    client, peer, hub = _client()
    running = asyncio.create_task(client.run())
    await asyncio.sleep(0.01)

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 2)

    assert peer.closed_with is None
    assert hub.heartbeats.members == hub.revocation_watch.members == set()
    assert hub.metrics.disconnects.reasons == ["client"]
