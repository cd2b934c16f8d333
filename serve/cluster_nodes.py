"""The addresses of the Ray cluster's own nodes, trusted as proxies by the gateway: Serve's
ingress runs on every node (HAProxy, or Serve's proxy) and reaches replicas on the others from
there, so on a cluster a replica's peer is most often another node, whose X-Forwarded-For names
the client. Configured proxies (``FINONE_TRUSTED_PROXIES``) are the load balancers in front."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

__all__ = ["TrustedPeers"]

log = logging.getLogger(__name__)

# Nodes join and leave with autoscaling; reading the list costs a call to Ray's GCS.
_REFRESH_S = 30.0


class TrustedPeers:
    """The configured proxies and the alive nodes' addresses (none outside Ray), the nodes read
    at most every ``_REFRESH_S``: the set is built then, not on each request that asks."""

    def __init__(self, configured: Iterable[str]) -> None:
        self._configured = frozenset(configured)
        self._addresses: frozenset[str] = frozenset()
        self._trusted = self._configured
        self._read_at = -math.inf

    def current(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._read_at >= _REFRESH_S:
            self._read_at = now
            self._addresses = self._read()
            self._trusted = self._configured | self._addresses
        return self._trusted

    def _read(self) -> frozenset[str]:
        import ray

        if not ray.is_initialized():
            return frozenset()
        try:
            nodes: list[dict[str, object]] = ray.nodes()  # type: ignore[no-untyped-call]
        except Exception as error:  # keep what was known: the GCS may be restarting
            log.warning("could not list the cluster's nodes (%s); keeping the last list", error)
            return self._addresses
        return frozenset(str(n["NodeManagerAddress"]) for n in nodes if n["Alive"])
