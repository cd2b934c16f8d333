"""Room on the session's Ray cluster for work that queues until it fits (Tune trials)."""

from __future__ import annotations

import time

import ray
from ray._private import state

__all__ = ["wait_for_free_cpus"]


def wait_for_free_cpus(cpus: float, timeout_s: float = 60.0) -> None:
    """Tune waits for ever for a trial that does not fit, until the test's timeout interrupts it
    somewhere inside Ray: fail at once instead, saying which actors hold the cluster."""
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < cpus:
        if time.monotonic() > deadline:
            alive = sorted(
                f"{actor['ActorClassName']} ({actor['Name'] or 'unnamed'})"
                for actor in state.actors().values()
                if actor["State"] == "ALIVE"
            )
            raise AssertionError(
                f"{cpus} CPUs never came free ({ray.available_resources().get('CPU', 0.0)} of "
                f"{ray.cluster_resources().get('CPU', 0.0)}); alive actors: {', '.join(alive)}"
            )
        time.sleep(0.5)
