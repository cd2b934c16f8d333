"""`finone up` as a subprocess on free ports, for the benchmarks that measure a whole platform."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cluster.ports import free_port

__all__ = ["FINONE", "platform_env", "start_platform", "stop_platform"]

FINONE = str(Path(sys.executable).parent / "finone")
_PORT_SETTINGS = ("API", "REDIS", "POSTGRES", "MLFLOW", "RAY", "DASHBOARD", "METRICS")


def platform_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment less any FINONE_ setting, with a data directory, free ports
    and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINONE_")}
    env["FINONE_DATA_DIR"] = str(data_dir)
    for name in _PORT_SETTINGS:
        env[f"FINONE_{name}_PORT"] = str(free_port())
    env.update(extra)
    return env


def start_platform(
    env: dict[str, str], log: Path, *args: str
) -> tuple[subprocess.Popen[bytes], float]:
    """Start the stack (``finone up *args``); return it with the seconds until /readyz said 200."""
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen([FINONE, "up", *args], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{env['FINONE_API_PORT']}/readyz"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"finone up exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return process, time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)


def stop_platform(process: subprocess.Popen[bytes]) -> float:
    """Ctrl-C, as a person stops it; the seconds it took to exit."""
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(120)
    return time.monotonic() - started
