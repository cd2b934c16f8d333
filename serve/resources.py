"""What the gateway's request handlers share within one replica: settings, the Postgres pool,
the Redis client and the auth machinery built on them.

Connections open on first use, inside the replica's event loop (a Serve replica constructs its
deployment before the loop serves requests), and are shared by every request of the replica.
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aioredis
from ray.serve.handle import DeploymentHandle

from core.events import Forecast, Insight
from core.settings import Settings
from serve.auth.access_tokens import AccessTokens
from serve.auth.passwords import Passwords
from serve.auth.rate_limit import RateLimit, RateLimiter
from serve.auth.revocation import Revocations
from serve.auth.signing_keys import KeyRing
from serve.cluster_nodes import TrustedPeers
from serve.coalescing import Coalescing
from serve.inference.deployment import Forecaster
from serve.inference.forecasts import ForecastRequest, Refusal
from serve.stream_hub import StreamHub

__all__ = ["Resources"]


class Resources:
    def __init__(
        self, settings: Settings, forecaster: DeploymentHandle[Forecaster] | None = None
    ) -> None:
        if not (settings.redis_url and settings.database_url):
            raise ValueError("the gateway needs REDIS_URL and DATABASE_URL")
        self.settings = settings
        # The inference deployment (serve.inference.deployment.Forecaster); None in a gateway
        # deployed without one, which then answers that forecasts are unavailable.
        self.forecaster = forecaster
        # Requests for one instrument's forecast (or insight) at one interval that arrive
        # together make one call to inference.
        self.forecasts: Coalescing[ForecastRequest, Forecast | Refusal] | None = (
            None if forecaster is None else Coalescing(forecaster.forecast.remote)
        )
        self.insights: Coalescing[ForecastRequest, Insight | Refusal] | None = (
            None if forecaster is None else Coalescing(forecaster.insight.remote)
        )
        self.redis = aioredis.from_url(settings.redis_url, socket_timeout=settings.health_timeout_s)
        self.passwords = Passwords(settings)
        self.keys = KeyRing(settings)
        self.tokens = AccessTokens(settings, self.keys)
        self.revocations = Revocations(self.redis, settings.access_token_ttl_s)
        self.limiter = RateLimiter(self.redis)
        self.login_failures = RateLimit(
            "login-account", settings.login_failures_per_account, settings.login_failure_window_s
        )
        self.auth_requests = RateLimit(
            "auth-ip", settings.auth_requests_per_ip, settings.auth_request_window_s
        )
        self._trusted_peers = TrustedPeers(settings.trusted_proxies)
        self._database_url = settings.database_url
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._hub: StreamHub | None = None

    def trusted_proxies(self) -> frozenset[str]:
        """Peers whose X-Forwarded-For is believed: the configured load balancers and the
        cluster's own nodes, where Serve's ingress runs."""
        return self._trusted_peers.current()

    def live_hub(self) -> StreamHub:
        """The replica's one reader of Redis streams for the live feed (made on first use)."""
        if self._hub is None:
            assert self.settings.redis_url
            self._hub = StreamHub(
                self.settings.redis_url, self.revocations, self.settings.live_heartbeat_s
            )
        return self._hub

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    pool = await asyncpg.create_pool(
                        self._database_url, min_size=1, max_size=10, timeout=10
                    )
                    await self.keys.load(pool)
                    self._pool = pool
        await self.keys.refresh_if_stale(self._pool)
        return self._pool

    async def close(self) -> None:
        await self._trusted_peers.close()
        if self._hub is not None:
            await self._hub.close()
        if self._pool is not None:
            await self._pool.close()
        await self.redis.aclose()
