"""Which ingress takes the API's connections on a Ray node the platform starts: the environment
that Serve's controller and HAProxy managers on that node read (``ray/serve/_private/
constants.py``), and the private directory HAProxy keeps its config and sockets in.

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

__all__ = ["haproxy_runtime_dir", "ingress_env"]

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
    """Environment variables for a Ray node's processes that select ``ingress``."""
    if ingress == "serve":
        return {"RAY_SERVE_ENABLE_HA_PROXY": "0"}
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return {
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
