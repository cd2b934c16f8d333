"""``finone up``/``status``/``down`` as a user runs them: real subprocesses on free ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis

from actors.demo import DEMO_REPLAY_FROM, stock_history
from actors.simulated.okx import OkxMarket, OkxServer
from cluster.ingress import haproxy_runtime_dir
from cluster.ports import free_port
from cluster.processes import stack_pids
from cluster.state import StackState, read_state
from core.events import Trade, decode_event
from core.redis_keys import EVENT_FIELD, QUOTES_HASH, stream_key
from tests.finone_cli import FINONE, run_finone
from tests.stack_runner import RunningStack, stack_env


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("finone: error:")]


class LocalOkx:
    """The local OKX protocol server on its own event loop thread, for subprocess stacks."""

    def __init__(self) -> None:
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),))

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with OkxServer(OkxMarket(("BTC-USDT",)), auto_interval_s=0.05) as server:
            self.url = server.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> LocalOkx:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def running_stacks() -> Iterator[list[RunningStack]]:
    stacks: list[RunningStack] = []
    yield stacks
    for stack in stacks:
        stack.ensure_stopped()


def all_pids(state: StackState) -> list[int]:
    return sorted({state.supervisor_pid, *stack_pids(state.stack_id, state.children)})


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def haproxies(pids: list[int]) -> list[int]:
    """The HAProxy processes among ``pids`` (the ingress, marked as the stack's like the rest)."""
    found = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "haproxy":
                found.append(pid)
        except OSError:
            continue
    return found


def wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def readyz_status(api: str) -> int:
    try:
        return httpx.get(f"{api}/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture
def local_okx() -> Iterator[LocalOkx]:
    with LocalOkx() as server:
        yield server


async def _trades_in_postgres(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM trades WHERE instrument_id = 'okx:BTC-USDT'")
        )
    finally:
        await conn.close()


@pytest.mark.slow
def test_platform_up_streams_records_reports_heals_and_stops_without_leftovers(
    tmp_path: Path, running_stacks: list[RunningStack], local_okx: LocalOkx
) -> None:
    env = stack_env(
        tmp_path / "data",
        FINONE_EMBEDDED_RESTART_DELAY_S="15",
        FINONE_FEEDS=json.dumps({"okx": ["BTC-USDT"]}),
        FINONE_FEED_URLS=json.dumps({"okx": local_okx.url}),
    )
    stack = RunningStack(env)
    running_stacks.append(stack)
    state = stack.wait_until_up()
    printed = "".join(stack.stdout)
    for label in ("API", "API docs", "MLflow UI", "Ray dashboard", "Prometheus metrics"):
        assert f"  {label} " in printed

    assert httpx.get(f"{stack.api}/healthz").status_code == 200
    assert readyz_status(stack.api) == 200
    report = json.loads(run_finone("status", "--json", env=env, timeout=120).stdout)
    unhealthy = [c for c in report["components"] if not c["ok"]]
    assert report["running"] and report["healthy"], unhealthy
    names = {c["name"] for c in report["components"] if c["ok"]}
    assert {"supervisor", "redis", "postgres", "mlflow", "ray", "serve:finone"} <= names
    assert "serve:finone/Gateway" in names
    assert "recorder" in names
    # A feed is live as soon as its connection is; wait for it and for its trades in Postgres.
    wait_for(
        lambda: asyncio.run(_trades_in_postgres(state.database_url)) > 0, 60, "recorded trades"
    )
    report = json.loads(run_finone("status", "--json", env=env, timeout=120).stdout)
    feeds = {c["name"]: c for c in report["components"] if c["name"].startswith("feed:")}
    assert feeds["feed:okx-0"]["ok"], feeds
    assert feeds["feed:alpaca"]["ok"] and "off" in feeds["feed:alpaca"]["detail"]

    # Per-feed status is on the Prometheus endpoint too (Ray prefixes custom metrics "ray_").
    def feed_metrics_exported() -> bool:
        text = httpx.get(state.metrics_url or "", timeout=10).text
        return "ray_finone_feed_events_total{" in text and 'connection="okx-0"' in text

    wait_for(feed_metrics_exported, 60, "feed metrics on the Prometheus endpoint")

    token = run_finone("dashboard-token", env=env, timeout=120).stdout.strip()
    dashboard = state.dashboard_url
    assert httpx.get(f"{dashboard}/api/version").status_code == 401
    assert (
        httpx.get(
            f"{dashboard}/api/version", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    )

    second = run_finone("up", env=env | {"FINONE_API_PORT": str(free_port())}, timeout=120)
    assert second.returncode == 1
    assert len(error_lines(second.stderr)) == 1
    assert "already running" in second.stderr and "finone down" in second.stderr

    for child in state.children:
        if child.name in {"redis", "postgres"}:
            os.kill(child.pid, signal.SIGKILL)
    wait_for(lambda: readyz_status(stack.api) == 503, 10, "/readyz to report the kills")
    assert httpx.get(f"{stack.api}/readyz", timeout=10).json()["code"] == "not_ready"
    degraded = run_finone("status", "--json", env=env, timeout=120)
    assert degraded.returncode == 1
    states = {c["name"]: c["ok"] for c in json.loads(degraded.stdout)["components"]}
    assert states["redis"] is False and states["postgres"] is False and states["mlflow"] is True
    wait_for(lambda: readyz_status(stack.api) == 200, 60, "redis and postgres to be restarted")

    pids = all_pids(read_state(stack.data_dir) or state)
    assert len(pids) > 5
    assert haproxies(pids), "HAProxy is the default ingress"
    down = run_finone("down", env=env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert stack.process.wait(30) == 0
    wait_for(lambda: not alive(pids), 15, f"processes {alive(pids)} to exit")
    assert read_state(stack.data_dir) is None
    assert not haproxy_runtime_dir(state.stack_id).exists()
    assert "stopped" not in down.stderr, "the supervisor should have stopped everything itself"


@pytest.mark.slow
def test_platform_restarted_on_same_data_dir_keeps_data_and_stops_on_sigint(
    tmp_path: Path, running_stacks: list[RunningStack]
) -> None:
    # First on Serve's own proxy, the fallback ingress; then on the default, HAProxy.
    env = stack_env(tmp_path / "data")
    first = RunningStack(env | {"FINONE_INGRESS": "serve"})
    running_stacks.append(first)
    state = first.wait_until_up()
    assert httpx.get(f"{first.api}/healthz").status_code == 200
    assert not haproxies(all_pids(state))
    with redis.from_url(state.redis_url) as client:
        client.set("finone:test:persisted", "yes")

    async def write_row() -> None:
        conn = await asyncpg.connect(state.database_url)
        try:
            await conn.execute(
                "INSERT INTO instruments (instrument_id, venue, symbol, asset_class) "
                "VALUES ('alpaca:AAPL', 'alpaca', 'AAPL', 'stock')"
            )
        finally:
            await conn.close()

    asyncio.run(write_row())
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(60) == 0
    assert not alive(all_pids(state))

    second = RunningStack(env)
    running_stacks.append(second)
    warm_state = second.wait_until_up()
    with redis.from_url(warm_state.redis_url) as client:
        assert client.get("finone:test:persisted") == b"yes"

    async def count_rows() -> int:
        conn = await asyncpg.connect(warm_state.database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM instruments"))
        finally:
            await conn.close()

    assert asyncio.run(count_rows()) == 1
    assert httpx.get(f"{second.api}/healthz").status_code == 200
    pids = all_pids(warm_state)
    assert haproxies(pids)
    second.process.send_signal(signal.SIGINT)
    assert second.process.wait(60) == 0
    wait_for(lambda: not alive(pids), 15, f"processes {alive(pids)} to exit")


async def _demo_counts(database_url: str, since_ns: int) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """
            SELECT
              (SELECT count(*) FROM bars
                WHERE instrument_id LIKE 'alpaca:%' AND interval = '1d'
                  AND start_ts_ns < $2) AS stock_bars,
              (SELECT count(*) FROM bars
                WHERE instrument_id LIKE 'alpaca:%' AND interval = '1d'
                  AND start_ts_ns >= $2) AS replayed_stock_bars,
              (SELECT count(*) FROM trades
                WHERE instrument_id LIKE 'simulated:%' AND exchange_ts_ns >= $1) AS trades,
              (SELECT count(DISTINCT instrument_id) FROM trades
                WHERE instrument_id LIKE 'simulated:%') AS traded,
              (SELECT count(*) FROM bars
                WHERE instrument_id LIKE 'simulated:%' AND interval = '1s') AS second_bars,
              (SELECT count(*) FROM bars
                WHERE instrument_id LIKE 'simulated:%' AND interval = '1m') AS minute_bars
            """,
            since_ns,
            DEMO_REPLAY_FROM.value,
        )
    finally:
        await conn.close()
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def demo_counts(database_url: str, since_ns: int = 0) -> dict[str, int]:
    """Stock bars loaded as history, those the replay recorded since, simulated trades (those
    since ``since_ns``), and the simulated bars."""
    return asyncio.run(_demo_counts(database_url, since_ns))


def published_trades(redis_url: str, since_ns: int) -> int:
    """Simulated trades the feed has written to Redis since ``since_ns``."""
    with redis.from_url(redis_url) as client:
        return sum(
            isinstance(decode_event(fields[EVENT_FIELD]), Trade)
            for symbol in ("BTC-USDT", "ETH-USDT", "SOL-USDT")
            for _, fields in client.xrange(
                stream_key("trades", f"simulated:{symbol}"), min=f"{since_ns // 1_000_000}-0"
            )
        )


@pytest.mark.slow
def test_demo_loads_history_streams_a_simulated_market_trains_and_stops_without_leftovers(
    tmp_path: Path, running_stacks: list[RunningStack]
) -> None:
    # A smaller first search than the demo's: this test looks for it to start, not for its
    # outcome, and the stack's start-up and shutdown share the cores with it.
    env = stack_env(
        tmp_path / "data", FINONE_DEMO_RETRAIN_SAMPLES="2", FINONE_DEMO_RETRAIN_EPOCHS="2"
    )
    first = RunningStack(env, "--demo")
    running_stacks.append(first)
    state = first.wait_until_up()

    # The four stocks' every bundled day before the replay's start, there before anything was
    # deployed; the replay then carries the history on, day after day.
    history = stock_history()
    loaded = int((history["date"] < DEMO_REPLAY_FROM).sum())
    assert demo_counts(state.database_url)["stock_bars"] == loaded

    def simulated_market_recorded() -> bool:
        counts = demo_counts(state.database_url)
        recorded = counts["traded"] == 3 and counts["second_bars"] > 0
        return recorded and counts["minute_bars"] > 0 and counts["replayed_stock_bars"] > 0

    wait_for(simulated_market_recorded, 60, "simulated trades, their bars and stock days")
    with redis.from_url(state.redis_url) as client:
        assert client.hget(QUOTES_HASH, "simulated:ETH-USDT") is not None
    report = json.loads(run_finone("status", "--json", env=env, timeout=120).stdout)
    components = {c["name"]: c for c in report["components"]}
    assert report["healthy"], [c for c in report["components"] if not c["ok"]]
    venue = components["simulated-venue"]["detail"]
    assert venue.startswith("simulated market") and "BTC-USDT" in venue and "1 client" in venue
    assert components["feed:simulated-0"]["detail"].startswith("live")
    assert components["feed:alpaca-iex"]["detail"].startswith("live")
    # Trained at once on the loaded history, without being asked: going for some time, or over.
    retrain = components["retrain"]["detail"]
    assert retrain.startswith(("training:", "idle:")) and "(1d bars, first run)" in retrain, retrain
    assert "s elapsed; " in retrain or ", took " in retrain, retrain

    pids = all_pids(state)
    first.process.send_signal(signal.SIGINT)
    assert first.process.wait(90) == 0
    wait_for(lambda: not alive(pids), 15, f"processes {alive(pids)} to exit")
    assert "not running" in run_finone("down", env=env, timeout=120).stdout

    # Started again: the history stays as it was, and every trade the market makes now is
    # recorded beside the earlier ones, none taken for a repeat of one (a recorder lagging by a
    # second or so aside).
    restarted_ns = time.time_ns()
    second = RunningStack(env, "--demo")
    running_stacks.append(second)
    warm = second.wait_until_up()
    assert demo_counts(warm.database_url)["stock_bars"] == loaded

    def recorded_as_published() -> bool:
        published = published_trades(warm.redis_url, restarted_ns)
        recorded = demo_counts(warm.database_url, restarted_ns)["trades"]
        return published > 20 and recorded >= published - 15

    wait_for(recorded_as_published, 60, "the new simulated trades in Postgres")
    pids = all_pids(warm)
    second.process.send_signal(signal.SIGINT)
    assert second.process.wait(90) == 0
    wait_for(lambda: not alive(pids), 15, f"processes {alive(pids)} to exit")


def assert_failed_cleanly(result: subprocess.CompletedProcess[str], env: dict[str, str]) -> str:
    """One error line, exit 1, and nothing left listening or recorded."""
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert read_state(Path(env["FINONE_DATA_DIR"])) is None
    for variable in (
        "FINONE_REDIS_PORT",
        "FINONE_POSTGRES_PORT",
        "FINONE_MLFLOW_PORT",
        "FINONE_RAY_PORT",
    ):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(env[variable]))) != 0, f"{variable} in use"
    return lines[0]


@pytest.mark.parametrize(
    "variable", ["FINONE_API_PORT", "FINONE_REDIS_PORT", "FINONE_DASHBOARD_PORT"]
)
def test_up_with_port_in_use_fails_with_one_line_and_starts_nothing(
    tmp_path: Path, variable: str
) -> None:
    env = stack_env(tmp_path / "data")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env[variable])))
        holder.listen()
        result = run_finone("up", env=env, timeout=120)
    line = assert_failed_cleanly(result, {**env, variable: str(free_port())})
    assert "already in use" in line and variable in line


def test_up_with_unreachable_database_url_fails_with_one_line_and_starts_nothing(
    tmp_path: Path,
) -> None:
    url = f"postgresql://postgres:hunter2secret@127.0.0.1:{free_port()}/finone"
    env = stack_env(tmp_path / "data", DATABASE_URL=url)
    line = assert_failed_cleanly(run_finone("up", env=env, timeout=120), env)
    assert "DATABASE_URL" in line and "unset DATABASE_URL" in line
    assert "hunter2secret" not in line


def test_up_with_two_services_on_one_port_fails_with_one_line(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "data")
    env["FINONE_MLFLOW_PORT"] = env["FINONE_API_PORT"]
    result = run_finone("up", env=env, timeout=120)
    assert result.returncode == 1
    line = error_lines(result.stderr)[0]
    assert "configured for both" in line and "FINONE_MLFLOW_PORT" in line


@pytest.mark.parametrize("locked", ["parent", "data_dir"])
def test_up_with_unwritable_data_dir_fails_with_one_line(tmp_path: Path, locked: str) -> None:
    parent = tmp_path / "readonly"
    data_dir = parent / "data"
    data_dir.mkdir(parents=True)
    (parent if locked == "parent" else data_dir).chmod(0o555)
    if locked == "parent":
        data_dir.rmdir()
    env = stack_env(data_dir)
    # Root ignores permission bits; dropping CAP_DAC_OVERRIDE makes them apply as for anyone.
    prefix = (
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
        if os.geteuid() == 0
        else []
    )
    result = subprocess.run(
        [*prefix, FINONE, "up"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "not writable" in lines[0] and "FINONE_DATA_DIR" in lines[0]


def test_status_when_not_running_says_how_to_start(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "data")
    result = run_finone("status", "--json", env=env, timeout=120)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["running"] is False and "finone up" in report["error"]


def test_down_when_not_running_is_a_noop(tmp_path: Path) -> None:
    result = run_finone("down", env=stack_env(tmp_path / "data"), timeout=120)
    assert result.returncode == 0
    assert "not running" in result.stdout


def test_up_with_invalid_setting_names_it(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "data", FINONE_API_PORT="not-a-port")
    result = run_finone("up", env=env, timeout=120)
    assert result.returncode == 1
    assert "api_port" in error_lines(result.stderr)[0]
