"""The platform on a local three-node Ray cluster, one worker node then removed: run as
``python -m tests.cluster.multinode_scenario`` by test_multinode.py with the services' URLs in
its environment; prints what it observed as one JSON object.

Feed actors and gateway replicas are deployed as ``finone up`` deploys them (the feeds
component, the Serve application with serve_config.yaml's options but two gateway replicas, one
per node); venues point at a closed local port, since tests have no internet.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
import psutil
import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

from cluster.components.feeds import FeedsComponent
from cluster.ports import free_port
from core.named_actors import RAY_NAMESPACE
from core.settings import Settings
from serve.app import application
from serve.auth.accounts import create_user
from serve.auth.passwords import Passwords
from serve.serve_config import deployment_options

PASSWORD = "a multinode passphrase"
_DEAD_VENUE = "ws://127.0.0.1:9/"


def ingress_of(port: int) -> str:
    """The name of the process listening on ``port`` (haproxy, or Serve's proxy actor)."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return psutil.Process(connection.pid).name() if connection.pid else "unknown"
    return "nobody"


def placements() -> dict[str, list[str]]:
    """node id -> the platform's actors alive on it (feeds by name, gateway replicas by class)."""
    placed: dict[str, list[str]] = {}
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000):
        name = actor.name or ""
        if name.startswith("feed:") or actor.class_name.startswith("ServeReplica:finone:Gateway"):
            placed.setdefault(actor.node_id, []).append(name or actor.class_name)
    return placed


async def main() -> dict[str, Any]:
    settings = Settings(
        feed_urls={venue: _DEAD_VENUE for venue in ("binance", "coinbase", "kraken", "okx")}
    )
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    email = f"multinode-{time.time_ns()}@example.com"
    await create_user(conn, email, await Passwords(settings).hash(PASSWORD))
    await conn.close()

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": True, "dashboard_port": free_port()},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace=RAY_NAMESPACE, log_to_driver=False)
    port = free_port()
    observed: dict[str, Any] = {"head": cluster.head_node.node_id}
    try:
        FeedsComponent().deploy(settings)
        options = deployment_options()
        options["Gateway"] = {"num_replicas": 2, "max_replicas_per_node": 1}
        options["Forecaster"] = {"num_replicas": 1}
        # Every node's proxy would bind the same loopback port here: the head's only.
        serve.start(http_options={"host": "127.0.0.1", "port": port, "location": "HeadOnly"})
        serve.run(application(settings, options), name="finone", route_prefix="/")
        observed["before"] = placements()
        observed["ingress"] = ingress_of(port)

        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as http:
            login = await http.post(
                f"{base}/v1/auth/token",
                data={"grant_type": "password", "username": email, "password": PASSWORD},
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            # The worker node holding the most of the platform goes away.
            workers_by_id = {w.node_id: w for w in workers}
            victim = max(workers_by_id, key=lambda n: len(observed["before"].get(n, [])))
            observed["removed"] = victim
            answers: list[int] = []

            async def ask_for(seconds: float) -> None:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    try:
                        response = await http.get(f"{base}/v1/instruments", headers=headers)
                        answers.append(response.status_code)
                    except httpx.HTTPError:
                        answers.append(0)
                    await asyncio.sleep(0.1)

            asking = asyncio.create_task(ask_for(45))
            await asyncio.sleep(3)
            cluster.remove_node(workers_by_id[victim])
            await asking
            observed["answers"] = answers
            observed["after"] = placements()
            final = await http.get(f"{base}/v1/instruments", headers=headers)
            observed["final_status"] = final.status_code
            observed["final_feeds"] = sorted(f["connection"] for f in final.json()["feeds"])
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()
    return observed


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
