"""Which ingress takes the API's connections on a Ray node the platform starts, and how Serve's
request path runs there: the environment that Serve's controller, replicas and HAProxy managers on
that node read (``ray/serve/_private/constants.py``), and the private directory HAProxy keeps its
config and sockets in.

Ray's defaults put those files in ``/tmp/haproxy-serve``, shared by every user and every stack
on the host, and bind the stats and exporter listeners to fixed ports (8404, 9101), so two
stacks on one host would collide; each stack gets its own directory and free ports, and its
HAProxy runs through ``finone-haproxy`` (``cluster.haproxy_launcher``), which keeps those two
listeners on loopback.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Literal

from cluster.ports import free_port

__all__ = ["haproxy_runtime_dir", "ingress_env", "REQUEST_PATH_ENV"]

# Ray's throughput-optimized request path (what RAY_SERVE_THROUGHPUT_OPTIMIZED=1 selects, less
# direct ingress, which the ingress decides, and less moving replicas' logs off stderr): a
# replica runs our handlers on its own event loop and routes calls to other deployments from it
# instead of handing each request across threads, calls between deployments go over gRPC,
# access logs are written in batches and what a replica made at start-up is left out of garbage
# collection. Side by side on two cores (HAProxy, 32 connections): /healthz 944 -> 1,636 req/s,
# /v1/auth/me 444 -> 689, /v1/predictions 342 -> 395.
REQUEST_PATH_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
}

# HAProxy takes a log socket path of at most 97 bytes, and Ray puts a node id (56 characters)
# and "/metrics.sock" under this directory: a data directory (or TMPDIR) can be too deep for
# it, so the directory is /tmp/finone-hap-<8 hex> (28 bytes with its slash).
_RUNTIME_BASE = Path("/tmp")


def haproxy_runtime_dir(stack_id: str) -> Path:
    """Where the stack's HAProxy keeps its config, state and sockets (removed at stop)."""
    return _RUNTIME_BASE / f"finone-hap-{stack_id[:8]}"


def _launcher() -> str:
    found = shutil.which("finone-haproxy", path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(
            "finone-haproxy is not installed beside this Python (pip install -e .), "
            "or set FINONE_INGRESS=serve"
        )
    return found


def ingress_env(ingress: Literal["haproxy", "serve"], runtime_dir: Path) -> dict[str, str]:
    """Environment variables for a Ray node's processes that select ``ingress`` and Serve's
    throughput-optimized request path."""
    if ingress == "serve":
        return {**REQUEST_PATH_ENV, "RAY_SERVE_ENABLE_HA_PROXY": "0"}
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {
        **REQUEST_PATH_ENV,
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": _launcher(),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(runtime_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(runtime_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(runtime_dir / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(runtime_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(runtime_dir / "server-state"),
        # A stopping replica stays reachable this long for load balancers to stop sending to
        # it; HAProxy is told by Serve's controller within a reload (~1 s). Ray's 30 s default
        # only made every `finone down` 30 s longer.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "5",
    }
