"""Finding the platform's long-lived actors. Each is a named, detached Ray actor in one
namespace, so any driver or Serve replica on any node reaches it by name, with no configuration
of which venues or services run.

Ray is imported only when an actor is looked up: Ray fixes its authentication mode when first
imported, and the launcher imports this module before it has set up the cluster's token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ray.actor import ActorHandle

__all__ = [
    "RAY_NAMESPACE",
    "STATUS_TIMEOUT_S",
    "feed_actor_name",
    "feed_actors",
    "named_actor",
    "actor_report",
]

RAY_NAMESPACE = "finone"
STATUS_TIMEOUT_S = 5.0
_FEED_PREFIX = "feed:"

Report = TypeVar("Report")


def feed_actor_name(connection: str) -> str:
    return f"{_FEED_PREFIX}{connection}"


def feed_actors() -> dict[str, ActorHandle[Any]]:
    """Handles of the running feed actors, by connection name."""
    import ray

    # Asked across namespaces: Serve replicas, which also ask, run in Serve's own namespace.
    return {
        entry["name"].removeprefix(_FEED_PREFIX): ray.get_actor(
            entry["name"], namespace=RAY_NAMESPACE
        )
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == RAY_NAMESPACE and entry["name"].startswith(_FEED_PREFIX)
    }


def named_actor(name: str) -> ActorHandle[Any]:
    """The platform's actor called ``name``; ValueError when none runs."""
    import ray

    return ray.get_actor(name, namespace=RAY_NAMESPACE)


def actor_report(
    name: str, report_type: type[Report], timeout_s: float = STATUS_TIMEOUT_S
) -> Report:
    """``status()`` of the platform's actor called ``name``, checked to be a ``report_type``;
    raises when the actor is missing (ValueError), stuck or answers something else."""
    import ray

    report: object = ray.get(named_actor(name).status.remote(), timeout=timeout_s)
    if not isinstance(report, report_type):
        raise TypeError(f"{name} reported a {type(report).__name__}, not a {report_type.__name__}")
    return report
