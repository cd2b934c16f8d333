"""The local stack: embedded services, a Ray head, and every registered component, run as one.

``LocalStack.start`` either brings everything up or, on any failure, takes down what it started
and raises a ``PlatformError`` whose message says what to do. ``supervise`` then watches the
children until interrupted, restarting an embedded service that dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import httpx
from pydantic import SecretStr

from cluster.components import WEB_APP, Component, components_to_deploy
from cluster.embedded_mlflow import ADMIN_USERNAME, SERVICE_USERNAME, EmbeddedMlflow
from cluster.embedded_postgres import EmbeddedPostgres
from cluster.embedded_redis import EmbeddedRedis
from cluster.ingress import haproxy_runtime_dir, ingress_env
from cluster.preflight import (
    DataDirLock,
    check_external_services,
    check_ports,
    ensure_writable_data_dir,
)
from cluster.processes import STACK_MARKER_ENV, ManagedProcess, kill_stack_processes
from cluster.ray_head import RayHead, ray_auth_env
from cluster.state import StackState, read_state, remove_state, write_state
from core.errors import PlatformError
from core.health import check_redis
from core.migrate import upgrade_database
from core.named_actors import RAY_NAMESPACE
from core.settings import Settings

__all__ = ["LocalStack"]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.25

_Probe = Callable[[], Awaitable[bool]]


@dataclass
class _Restart:
    """An embedded service that died and is due to be started again."""

    process: ManagedProcess
    due_at: float


class LocalStack:
    """One running copy of the platform on this machine, owned by the calling process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_path
        self.stack_id = uuid.uuid4().hex
        self.env = {**os.environ, STACK_MARKER_ENV: self.stack_id}
        self._lock = DataDirLock(self.data_dir)
        self._redis: EmbeddedRedis | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._mlflow: EmbeddedMlflow | None = None
        self._ray_head: RayHead | None = None
        self._ray_connected = False
        self._deployed: list[Component] = []
        self._restarts: dict[str, _Restart] = {}
        self._owns_state = False
        self.resolved = settings
        self._started_at_ns = time.time_ns()

    # -- start -----------------------------------------------------------------------------

    def start(self) -> StackState:
        """Bring everything up; whether it succeeds or raises, the caller must call ``stop``."""
        ensure_writable_data_dir(self.data_dir)
        self._lock.acquire()
        self._clean_up_after_crash()
        check_ports(self.settings, starts_ray_head=self.settings.ray_address is None)
        check_external_services(self.settings)
        self._start_processes()
        asyncio.run(self._wait_until_ready())
        applied = upgrade_database(self._database_url)
        log.info("database schema up to date (applied %s)", ", ".join(applied) or "nothing")
        if self.settings.demo:
            self._load_demo_history()
        self._connect_ray()
        # Components import Ray: only once _connect_ray has put the head's token in place.
        for component in components_to_deploy(self.settings):
            log.info("deploying %s", component.name)
            component.deploy(self.resolved)
            self._deployed.append(component)
        state = self._state()
        write_state(self.data_dir, state)
        self._owns_state = True
        return state

    def _load_demo_history(self) -> None:
        """The bundled stock history in the bars table before anything is deployed, so charts
        and the first retraining have it at once; loading it again changes nothing."""
        # Imported here: pandas and the history are for the demo alone.
        from actors.demo import DEMO_REPLAY_FROM
        from cluster.sample_data import load_sample_bars

        loaded = asyncio.run(load_sample_bars(self._database_url, before=DEMO_REPLAY_FROM))
        inserted = sum(new for _, new, _ in loaded.values())
        total = sum(bars for bars, _, _ in loaded.values())
        log.info("bundled stock history: %d daily bars, %d of them new", total, inserted)

    @property
    def _database_url(self) -> str:
        assert self.resolved.database_url is not None
        return self.resolved.database_url

    def _clean_up_after_crash(self) -> None:
        stale = read_state(self.data_dir)
        if stale is None:
            return
        leftovers = kill_stack_processes(stale.stack_id, stale.children)
        if leftovers:
            log.warning(
                "stopped %d processes left by a stack that did not shut down", len(leftovers)
            )
        shutil.rmtree(haproxy_runtime_dir(stale.stack_id), ignore_errors=True)
        remove_state(self.data_dir)

    def _start_processes(self) -> None:
        s = self.settings
        updates: dict[str, str | SecretStr] = {}
        if s.redis_url is None:
            self._redis = EmbeddedRedis(self.data_dir, s.host, s.redis_port, self.env)
            updates["redis_url"] = self._redis.url
            self._redis.process.start()
        if s.database_url is None:
            self._postgres = EmbeddedPostgres(self.data_dir, s.host, s.postgres_port, self.env)
            updates["database_url"] = self._postgres.url
            self._postgres.prepare()
            self._postgres.process.start()
        if s.mlflow_tracking_uri is None:
            self._mlflow = EmbeddedMlflow(self.data_dir, s.host, s.mlflow_port, self.env)
            updates["mlflow_tracking_uri"] = self._mlflow.url
            updates["mlflow_tracking_username"] = SERVICE_USERNAME
            updates["mlflow_tracking_password"] = SecretStr(self._mlflow.service_password)
            self._mlflow.process.start()
        if s.ray_address is None:
            self._ray_head = self._new_ray_head()
            updates["ray_address"] = self._ray_head.address
            if s.ray_dashboard_url is None:
                updates["ray_dashboard_url"] = self._ray_head.dashboard_url
            self._ray_head.process.start()
        self.resolved = s.model_copy(update=updates)

    def _new_ray_head(self) -> RayHead:
        s = self.settings
        return RayHead(
            self.data_dir,
            s.host,
            s.ray_port,
            s.dashboard_port,
            s.metrics_port,
            s.ray_num_cpus,
            {**self.env, **ingress_env(s.ingress, haproxy_runtime_dir(self.stack_id))},
        )

    async def _wait_until_ready(self) -> None:
        probes: list[tuple[ManagedProcess, _Probe]] = []
        if self._redis is not None:
            probes.append((self._redis.process, self._redis_ready))
        if self._postgres is not None:
            probes.append((self._postgres.process, self._postgres_ready))
        if self._mlflow is not None:
            probes.append((self._mlflow.process, self._mlflow_ready))
        waits = [self._wait_for(process, ready) for process, ready in probes]
        if self._ray_head is not None:
            waits.append(self._wait_for_ray_head())
        await asyncio.gather(*waits)

    async def _wait_for_ray_head(self) -> None:
        """The head's internal listeners get ports that were free a moment before `ray start`
        binds them; another process can take one meanwhile (seen in CI: the runtime-env agent's),
        and the head then exits at once. It is started again, once, on fresh ports."""
        assert self._ray_head is not None
        try:
            await self._wait_for(self._ray_head.process, self._ray_head_ready)
            return
        except PlatformError as error:
            if self._ray_head.process.exit_code() is None:
                raise
            log.warning("%s; starting the Ray head again on fresh internal ports", error)
        self._ray_head.process.stop()
        self._ray_head = self._new_ray_head()
        self._ray_head.process.start()
        await self._wait_for(self._ray_head.process, self._ray_head_ready)

    async def _wait_for(self, process: ManagedProcess, ready: _Probe) -> None:
        await process.wait_until_ready(
            ready, self.settings.startup_timeout_s, hint=" or raise FINONE_STARTUP_TIMEOUT_S"
        )
        log.info("%s is ready", process.name)

    async def _redis_ready(self) -> bool:
        assert self._redis is not None
        return (await check_redis(self._redis.url, self.settings.health_timeout_s)).ok

    async def _mlflow_ready(self) -> bool:
        assert self._mlflow is not None
        return await self._mlflow.ready(self.settings.health_timeout_s)

    async def _postgres_ready(self) -> bool:
        assert self._postgres is not None
        try:
            conn = await asyncpg.connect(
                self._postgres.url_for("postgres"), timeout=self.settings.health_timeout_s
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        await self._postgres.provision(self.settings.health_timeout_s)
        return True

    async def _ray_head_ready(self) -> bool:
        assert self._ray_head is not None
        token = self._ray_head.token_path.read_text().strip()
        try:
            async with httpx.AsyncClient(timeout=self.settings.health_timeout_s) as client:
                response = await client.get(
                    f"{self._ray_head.dashboard_url}/api/version",
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _connect_ray(self) -> None:
        # Ray reads its authentication mode when first imported, so the token comes first.
        if self._ray_head is not None:
            os.environ.update(ray_auth_env(self._ray_head.token_path))
        import ray

        # ray.init installs native signal handlers that end the process on the spot; the
        # caller's handlers are put back so a signal still means an orderly shutdown.
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        ray.init(
            address=self.resolved.ray_address,
            namespace=RAY_NAMESPACE,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
        for signum, handler in handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._ray_connected = True

    def _state(self) -> StackState:
        r = self.resolved
        assert r.redis_url and r.database_url and r.mlflow_tracking_uri and r.ray_address
        head = self._ray_head
        return StackState(
            stack_id=self.stack_id,
            supervisor_pid=os.getpid(),
            started_at_ns=self._started_at_ns,
            data_dir=str(self.data_dir),
            namespace=RAY_NAMESPACE,
            ray_address=r.ray_address,
            ray_token_path=str(head.token_path) if head else None,
            dashboard_url=head.dashboard_url if head else None,
            metrics_url=f"http://{r.host}:{r.metrics_port}/metrics" if head else None,
            redis_url=r.redis_url,
            database_url=r.database_url,
            mlflow_url=r.mlflow_tracking_uri,
            api_url=f"http://{r.host}:{r.api_port}",
            children=[
                record
                for process in self._all_processes()
                if (record := process.record()) is not None
            ],
        )

    def urls(self) -> dict[str, str]:
        """Every address a person needs, in the order they are printed."""
        state = self._state()
        urls: dict[str, str] = {}
        for component in self._deployed:
            urls.update(component.urls(self.resolved))
        urls = dict(sorted(urls.items(), key=lambda item: item[0] != WEB_APP))
        urls["MLflow UI"] = state.mlflow_url
        if self._mlflow is not None:
            urls["MLflow UI"] += (
                f"  (sign in as `{ADMIN_USERNAME}`, password: `finone mlflow-password` prints it)"
            )
        if state.dashboard_url:
            urls["Ray dashboard"] = (
                f"{state.dashboard_url}  (sign in with the token `finone dashboard-token` prints)"
            )
        if state.metrics_url:
            urls["Prometheus metrics"] = state.metrics_url
        urls["Logs"] = str(self.data_dir / "logs")
        return urls

    # -- run -------------------------------------------------------------------------------

    def supervise(self) -> None:
        """Watch the children until interrupted; restart embedded services that die."""
        delay = self.settings.embedded_restart_delay_s
        while True:
            time.sleep(POLL_INTERVAL_S)
            if self._ray_head is not None and self._ray_head.process.died_unexpectedly:
                raise PlatformError(
                    f"the Ray head exited unexpectedly with code "
                    f"{self._ray_head.process.exit_code()}; see {self._ray_head.process.log_path}"
                )
            for process in self._embedded_processes():
                pending = self._restarts.get(process.name)
                if pending is None and process.died_unexpectedly:
                    log.error(
                        "%s exited unexpectedly with code %s; restarting in %.0f s",
                        process.name,
                        process.exit_code(),
                        delay,
                    )
                    self._restarts[process.name] = _Restart(process, time.monotonic() + delay)
                elif pending is not None and time.monotonic() >= pending.due_at:
                    del self._restarts[process.name]
                    process.start()
                    write_state(self.data_dir, self._state())

    def _embedded_processes(self) -> list[ManagedProcess]:
        services = (self._redis, self._postgres, self._mlflow)
        return [service.process for service in services if service is not None]

    def _all_processes(self) -> list[ManagedProcess]:
        head = [self._ray_head.process] if self._ray_head is not None else []
        return self._embedded_processes() + head

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Take down everything this stack started, deployed components first. Idempotent."""
        for component in reversed(self._deployed):
            try:
                component.stop(self.resolved)
            except Exception:
                log.exception("stopping %s failed; continuing shutdown", component.name)
        self._deployed.clear()
        if self._ray_connected:
            import ray

            ray.shutdown()
            self._ray_connected = False
        if self._ray_head is not None:
            self._ray_head.process.stop()
        for process in reversed(self._embedded_processes()):
            process.stop()
        leftovers = kill_stack_processes(self.stack_id)
        if leftovers:
            log.warning(
                "killed %d processes that outlived their parents: %s", len(leftovers), leftovers
            )
        shutil.rmtree(haproxy_runtime_dir(self.stack_id), ignore_errors=True)
        if self._owns_state:
            remove_state(self.data_dir)
            self._owns_state = False
        if self._lock.held:
            self._lock.release()
            log.info("the platform is stopped")
