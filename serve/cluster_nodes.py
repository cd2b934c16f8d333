"""The addresses of the Ray cluster's own nodes, trusted as proxies by the gateway: Serve's
ingress runs on every node (HAProxy, or Serve's proxy) and reaches replicas on the others from
there, so on a cluster a replica's peer is most often another node, whose X-Forwarded-For names
the client. Configured proxies (``FINONE_TRUSTED_PROXIES``) are the load balancers in front."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from serve.background import keep_running

__all__ = ["TrustedPeers"]

log = logging.getLogger(__name__)

# Nodes join and leave with autoscaling; reading the list costs a call to Ray's GCS.
_REFRESH_S = 30.0


class TrustedPeers:
    """The configured proxies and the alive nodes' addresses (none outside Ray). The nodes are
    read once when first asked (a gateway replica asks as it starts, so no request waits for
    the GCS), then every ``_REFRESH_S`` by a background task, off the event loop."""

    def __init__(self, configured: Iterable[str]) -> None:
        self._configured = frozenset(configured)
        self._addresses: frozenset[str] = frozenset()
        self._trusted: frozenset[str] | None = None
        self._task: asyncio.Task[None] | None = None

    def current(self) -> frozenset[str]:
        if self._trusted is None:
            self._learn(self._read())
            self._task = asyncio.get_running_loop().create_task(
                keep_running(self._refresh, "reading the cluster's nodes", log, _REFRESH_S),
                name="trusted-peers",
            )
        assert self._trusted is not None
        return self._trusted

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _refresh(self) -> None:
        await asyncio.sleep(_REFRESH_S)
        self._learn(await asyncio.to_thread(self._read))

    def _learn(self, addresses: frozenset[str]) -> None:
        self._addresses = addresses
        self._trusted = self._configured | addresses

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
