"""``finone up`` as a user runs it, for the end-to-end tests: a real subprocess on free ports,
its output collected as it comes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from cluster.ports import free_port
from cluster.state import StackState, read_state
from tests.finone_cli import FINONE, run_finone

__all__ = ["STARTUP_TIMEOUT_S", "RunningStack", "stack_env"]

STARTUP_TIMEOUT_S = 240


def stack_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"}
        # The session cluster's ingress settings are its own: a stack chooses its ingress.
        and not key.startswith(("FINONE_", "RAY_AUTH", "RAY_SERVE_"))
    }
    env.update(
        FINONE_DATA_DIR=str(data_dir),
        FINONE_API_PORT=str(free_port()),
        FINONE_REDIS_PORT=str(free_port()),
        FINONE_POSTGRES_PORT=str(free_port()),
        FINONE_MLFLOW_PORT=str(free_port()),
        FINONE_RAY_PORT=str(free_port()),
        FINONE_DASHBOARD_PORT=str(free_port()),
        FINONE_METRICS_PORT=str(free_port()),
        # Tests have no internet: no feeds unless a test points one at a local venue server.
        FINONE_FEEDS="{}",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class RunningStack:
    """A ``finone up`` subprocess (with ``args``, such as ``--demo``) whose output is collected
    as it comes."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.env = env
        self.data_dir = Path(env["FINONE_DATA_DIR"])
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.process = subprocess.Popen(
            [FINONE, "up", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            for stream, sink in (
                (self.process.stdout, self.stdout),
                (self.process.stderr, self.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)

    def wait_until_up(self) -> StackState:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not any("is up" in line for line in self.stdout):
            if self.process.poll() is not None:
                raise AssertionError("finone up exited early:\n" + "".join(self.stderr[-30:]))
            if time.monotonic() > deadline:
                raise AssertionError("finone up not ready:\n" + "".join(self.stderr[-30:]))
            time.sleep(0.2)
        state = read_state(self.data_dir)
        assert state is not None
        return state

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.env['FINONE_API_PORT']}"

    def ensure_stopped(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
        run_finone("down", env=self.env, timeout=120)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
