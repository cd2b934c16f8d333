"""The platform across several Ray nodes, through HAProxy ingress: feed actors and gateway
replicas spread over them, and the API keeps answering while a worker node is removed (its
actors come back on the others)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from cluster.ingress import haproxy_runtime_dir, ingress_env
from core.settings import Settings


@pytest.mark.slow
def test_platform_spreads_over_nodes_and_survives_losing_one(
    service_settings: Settings,
) -> None:
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RAY_ADDRESS", "FINONE_", "RAY_SERVE_"))
        },
        "FINONE_ENVIRONMENT": "test",
        "FINONE_SECRET_KEY": service_settings.secret_key.get_secret_value(),
        "FINONE_DATA_DIR": str(service_settings.data_path / "multinode"),
        "REDIS_URL": str(service_settings.redis_url),
        "DATABASE_URL": str(service_settings.database_url),
        "MLFLOW_TRACKING_URI": str(service_settings.mlflow_tracking_uri),
    }
    # Through the platform's default ingress, HAProxy, as `finone up` and the manifests run it.
    runtime_dir = haproxy_runtime_dir(uuid.uuid4().hex)
    env.update(ingress_env(Settings().ingress, runtime_dir))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tests.cluster.multinode_scenario"],
            env=env,
            capture_output=True,
            text=True,
            timeout=420,
            check=False,
        )
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-4000:]
    observed = json.loads(result.stdout.strip().splitlines()[-1])

    assert observed["ingress"] == "haproxy"
    before, after = observed["before"], observed["after"]
    # Spread: more than one node runs feed actors, and the two gateway replicas are apart.
    feed_nodes = {
        node for node, names in before.items() if any(n.startswith("feed:") for n in names)
    }
    gateway_nodes = [node for node, names in before.items() for n in names if "Gateway" in n]
    assert len(feed_nodes) >= 2, before
    assert len(gateway_nodes) == 2 and len(set(gateway_nodes)) == 2, before
    # The removed node's actors run again on the nodes that are left.
    assert observed["removed"] not in after
    feeds_before = sorted(n for names in before.values() for n in names if n.startswith("feed:"))
    feeds_after = sorted(n for names in after.values() for n in names if n.startswith("feed:"))
    assert feeds_after == feeds_before
    assert sum("Gateway" in n for names in after.values() for n in names) == 2
    # The API kept answering: at most a moment of failures while the node went, none after.
    answers = observed["answers"]
    assert answers.count(200) >= 0.9 * len(answers), answers
    assert set(answers[-20:]) == {200}, answers[-20:]
    assert observed["final_status"] == 200
    assert observed["final_feeds"] == [n.removeprefix("feed:") for n in feeds_before]
