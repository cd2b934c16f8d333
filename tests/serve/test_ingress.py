"""The session gateway is reached as `finone up` serves it by default: through Ray Serve's
HAProxy ingress, run by ``finone-haproxy``. What that must not change: nothing listens beyond
the API port, and each client is told apart by its own address, not HAProxy's; and what it
does: the live feed is not compressed, whatever a client offers, a connection that never
finishes its request is cut instead of holding a slot for an hour, and a live client whose
network vanished is let go."""

from __future__ import annotations

import asyncio
import json
import resource
import stat
import time
from pathlib import Path

import httpx
import psutil
import ray
import redis.asyncio as aioredis

from actors.publisher import RedisPublisher
from cluster.haproxy_launcher import slots_for
from core.redis_keys import live_connections_key
from core.settings import Settings
from tests.polling import wait_until
from tests.serve.auth_api import PASSWORD, AuthApi, Session, new_email, new_ip
from tests.serve.live_api import (
    connect_feed,
    feed_events,
    next_message,
    publish,
    subscribe,
    trades,
)


def _haproxies() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "haproxy"]


def _listeners(process: psutil.Process) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in process.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


def _ours(serve_port: int) -> psutil.Process:
    (haproxy,) = [p for p in _haproxies() if ("127.0.0.1", serve_port) in _listeners(p)]
    return haproxy


def _config_of(haproxy: psutil.Process) -> Path:
    return Path(haproxy.cmdline()[haproxy.cmdline().index("-f") + 1])


def test_the_api_port_is_haproxys_and_nothing_else_it_opens_leaves_loopback(
    gateway_url: str, serve_port: int
) -> None:
    assert httpx.get(f"{gateway_url}/healthz").status_code == 200
    ours = [p for p in _haproxies() if ("127.0.0.1", serve_port) in _listeners(p)]
    assert ours, f"no haproxy process listens on the API port {serve_port}"
    (haproxy,) = ours
    listeners = _listeners(haproxy)
    # The API, the stats page and the Prometheus exporter (Ray binds the last two to every
    # interface; the launcher moves them).
    assert len(listeners) == 3, listeners
    assert {ip for ip, _ in listeners} == {"127.0.0.1"}, listeners
    config = _config_of(haproxy)
    admin_socket = next(
        Path(line.split()[2]) for line in config.read_text().splitlines() if "stats socket" in line
    )
    assert stat.S_IMODE(admin_socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.parent.stat().st_mode) == 0o700


async def test_clients_are_limited_by_their_own_address_and_cannot_claim_another(
    gateway_url: str, gateway_settings: Settings
) -> None:
    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=address)
        return httpx.AsyncClient(transport=transport, base_url=gateway_url, timeout=30)

    def login(email: str) -> dict[str, str]:
        return {"grant_type": "password", "username": email, "password": PASSWORD}

    # Straight from loopback addresses of their own, as separate machines would connect: only
    # HAProxy's X-Forwarded-For line tells the gateway who they are.
    async with client("127.0.0.2") as greedy, client("127.0.0.3") as bystander:
        for _ in range(gateway_settings.auth_requests_per_ip):
            response = await greedy.post("/v1/auth/token", data=login(new_email()))
            assert response.status_code == 400, response.text
        assert (await greedy.post("/v1/auth/token", data=login(new_email()))).status_code == 429
        claimed = await greedy.post(
            "/v1/auth/token", data=login(new_email()), headers={"X-Forwarded-For": "127.0.0.9"}
        )
        assert claimed.status_code == 429
        assert (await bystander.post("/v1/auth/token", data=login(new_email()))).status_code == 400


async def test_a_request_another_node_forwards_is_the_client_s_it_names(
    gateway_url: str, admin: Session
) -> None:
    # On a cluster, HAProxy (or Serve's proxy) on one node hands requests to replicas on
    # others: the replica's peer is a node of the cluster, which it trusts as a proxy without
    # anyone listing the nodes' addresses in FINONE_TRUSTED_PROXIES.
    (node,) = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    assert node != "127.0.0.1"
    client_ip = new_ip()
    transport = httpx.AsyncHTTPTransport(local_address=node)
    async with httpx.AsyncClient(transport=transport, base_url=gateway_url) as from_node:
        registered = await from_node.post(
            "/v1/auth/register",
            json={"email": new_email(), "password": PASSWORD},
            headers={"X-Forwarded-For": client_ip},
        )
    assert registered.status_code == 201, registered.text
    assert await _audited_address(gateway_url, admin, registered.json()["user_id"]) == client_ip


async def _audited_address(gateway_url: str, admin: Session, user_id: str) -> str:
    async with httpx.AsyncClient(base_url=gateway_url) as http:
        audit = await http.get(
            "/v1/admin/audit", params={"user_id": user_id}, headers=admin.headers
        )
    address: str = audit.json()["items"][0]["client_ip"]
    return address


async def test_the_live_feed_is_sent_uncompressed_to_a_client_offering_deflate(
    gateway_url: str, user: Session, publisher: RedisPublisher, instrument: str
) -> None:
    # A browser offers permessage-deflate on every WebSocket; accepted, its zlib state would
    # cost the replica more per connection than the rest of the connection does.
    async with await connect_feed(gateway_url, user) as ws:
        offered = ws.request.headers["Sec-WebSocket-Extensions"] if ws.request else ""
        assert "permessage-deflate" in offered
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        await subscribe(ws, instruments=[instrument], channels=["trades"])
        await publish(publisher, trades(instrument, 0, 3))
        events = await feed_events(ws, 3)
    assert [e["event"]["trade_id"] for e in events] == ["0", "1", "2"]


async def test_connections_that_never_finish_a_request_are_cut_and_others_still_served(
    gateway_url: str, serve_port: int
) -> None:
    # Slowloris: each socket sends the start of a request and then nothing. Held for the
    # client timeout (an hour), enough of them would take every one of HAProxy's slots.
    stalled = [await asyncio.open_connection("127.0.0.1", serve_port) for _ in range(200)]
    for _, writer in stalled:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: finone\r\nX-Slow: ")
        await writer.drain()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        assert (await http.get("/healthz")).status_code == 200

    endings = await asyncio.gather(
        *(asyncio.wait_for(reader.read(), 30) for reader, _ in stalled), return_exceptions=True
    )

    assert not [e for e in endings if isinstance(e, BaseException)], "sockets left open"
    assert time.monotonic() - started < 20
    assert {e.split(b" ", 2)[1] for e in endings if e} <= {b"408"}  # type: ignore[union-attr]
    for _, writer in stalled:
        writer.close()


async def test_idle_sockets_past_rays_4096_slots_leave_room_for_everyone_else(
    gateway_url: str, serve_port: int, user: Session
) -> None:
    # Sockets that connect and say nothing hold one of HAProxy's slots each until it cuts them
    # (10 s); Ray gives it 4,096, the launcher as many as its open-files limit allows.
    haproxy = _ours(serve_port)
    _, open_files = haproxy.rlimit(psutil.RLIMIT_NOFILE)
    (maxconn,) = [
        int(line.split()[1])
        for line in _config_of(haproxy).read_text().splitlines()
        if line.strip().startswith("maxconn ")
    ]
    assert maxconn == max(4_096, slots_for(open_files))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # 10,000 where the open-files limits allow it; 6,233 on a machine whose hard limit is 20,000
    # (HAProxy's slots, and root lacking CAP_SYS_RESOURCE cannot raise it).
    idle_count = min(10_000, maxconn - 100, hard - 1_000)
    idle: list[asyncio.StreamWriter] = []
    try:
        while len(idle) < idle_count:
            batch = min(500, idle_count - len(idle))
            opened = await asyncio.gather(
                *(asyncio.open_connection("127.0.0.1", serve_port) for _ in range(batch))
            )
            idle += [writer for _, writer in opened]
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
            health = await http.get("/healthz")
            me = await http.get("/v1/auth/me", headers=user.headers)
        assert (health.status_code, me.status_code) == (200, 200)
        assert time.monotonic() - started < 5
    finally:
        for writer in idle:
            writer.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class SilentRelay:
    """A TCP relay to the API port that can fall silent: from then on it passes nothing either
    way and closes nothing, as when a client's network vanishes (the server's side of the
    connection is half-open: no FIN, no RST ever comes). It notes when the server's side ends."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._flowing = True
        self._writers: list[asyncio.StreamWriter] = []
        self.server_ended = asyncio.Event()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()

    def fall_silent(self) -> None:
        self._flowing = False

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        server, to_server = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers += [to_client, to_server]
        await asyncio.gather(self._copy(client, to_server), self._copy(server, to_client))
        self.server_ended.set()

    async def _copy(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65_536):
            if self._flowing:
                sink.write(data)
                await sink.drain()
        if self._flowing:
            sink.close()


async def test_a_live_client_whose_network_vanished_is_let_go(
    serve_port: int, auth_api: AuthApi, redis_url: str
) -> None:
    # Nothing reaches the server once the client's network is gone: Serve's uvicorn pings every
    # 20 s and gives a WebSocket up after 20 s without an answer.
    session = await auth_api.signed_up()
    redis = aioredis.from_url(redis_url)
    leases = live_connections_key(session.user_id)
    relay = SilentRelay(serve_port)
    try:
        async with relay as relayed_url:
            ws = await connect_feed(relayed_url, session)
            await ws.send(json.dumps({"type": "ping"}))
            await next_message(ws, "pong")
            assert await redis.zcard(leases) == 1

            relay.fall_silent()

            await asyncio.wait_for(relay.server_ended.wait(), 90)
            await wait_until(
                lambda: _holds_none(redis, leases), 10, "the connection's lease given back"
            )
            ws.transport.abort()
    finally:
        await redis.aclose()


async def _holds_none(redis: aioredis.Redis, leases: str) -> bool:
    return await redis.zcard(leases) == 0
