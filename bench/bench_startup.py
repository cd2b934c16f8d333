"""Time from `finone up` to ready (cold and warm) and the memory of the whole idle stack.

Targets on a 2-core machine: warm start ready in under 60 s, idle stack under 4 GB.
Run with `make bench` or `.venv/bin/python bench/bench_startup.py [--warm-runs N]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from cluster.processes import stack_pids
from cluster.state import read_state

FINONE = str(Path(sys.executable).parent / "finone")
PORT_SETTINGS = (
    "API", "REDIS", "POSTGRES", "MLFLOW", "RAY", "DASHBOARD", "METRICS",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINONE_")}
    env["FINONE_DATA_DIR"] = str(data_dir)
    for name in PORT_SETTINGS:
        env[f"FINONE_{name}_PORT"] = str(_free_port())
    return env


def _start(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start the stack; return it with the seconds until /readyz answered 200."""
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen([FINONE, "up"], env=env, stdout=out, stderr=out)
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


def _stop(process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(120)
    return time.monotonic() - started


def _memory_mib(pids: list[int]) -> tuple[float, float]:
    """Summed RSS and PSS; PSS splits shared pages (Ray's object store) between their users."""
    rss = pss = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += info.pss
    return rss / 2**20, pss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument("--idle-s", type=float, default=20.0, help="settle time before measuring")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="finone-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env = _environment(data_dir)
        log = Path(tmp) / "finone.log"

        process, cold_s = _start(env, log)
        time.sleep(args.idle_s)
        state = read_state(data_dir)
        assert state is not None
        pids = [state.supervisor_pid, *stack_pids(state.stack_id, state.children)]
        rss_mib, pss_mib = _memory_mib(pids)
        stop_s = [_stop(process)]

        warm: list[float] = []
        for _ in range(args.warm_runs):
            process, seconds = _start(env, log)
            warm.append(seconds)
            stop_s.append(_stop(process))

    print(f"cpus: {os.cpu_count()}, processes in idle stack: {len(pids)}")
    print(f"cold start to ready:  {cold_s:6.1f} s  (first start: initdb, MLflow schema)")
    print(
        f"warm start to ready:  {statistics.median(warm):6.1f} s  median of {len(warm)} "
        f"(min {min(warm):.1f}, max {max(warm):.1f}); target < 60 s"
    )
    print(f"stop (SIGINT) median: {statistics.median(stop_s):6.1f} s")
    print(f"idle stack memory:    {pss_mib:6.0f} MiB PSS ({rss_mib:.0f} MiB summed RSS); target < 4096 MiB")


if __name__ == "__main__":
    main()
