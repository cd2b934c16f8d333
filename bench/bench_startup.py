"""Time from `finone up` to ready (cold and warm) and the memory of the whole idle stack.

Targets on a 2-core machine: warm start ready in under 60 s, idle stack under 4 GB.
Run with `make bench` or `.venv/bin/python bench/bench_startup.py [--warm-runs N]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))

from platform_process import platform_env, start_platform, stop_platform  # noqa: E402

from cluster.processes import stack_pids  # noqa: E402
from cluster.state import read_state  # noqa: E402


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
        env = platform_env(data_dir)
        log = Path(tmp) / "finone.log"

        process, cold_s = start_platform(env, log)
        time.sleep(args.idle_s)
        state = read_state(data_dir)
        assert state is not None
        pids = [state.supervisor_pid, *stack_pids(state.stack_id, state.children)]
        rss_mib, pss_mib = _memory_mib(pids)
        stop_s = [stop_platform(process)]

        warm: list[float] = []
        for _ in range(args.warm_runs):
            process, seconds = start_platform(env, log)
            warm.append(seconds)
            stop_s.append(stop_platform(process))

    print(f"cpus: {os.cpu_count()}, processes in idle stack: {len(pids)}")
    print(f"cold start to ready:  {cold_s:6.1f} s  (first start: initdb, MLflow schema)")
    print(
        f"warm start to ready:  {statistics.median(warm):6.1f} s  median of {len(warm)} "
        f"(min {min(warm):.1f}, max {max(warm):.1f}); target < 60 s"
    )
    print(f"stop (SIGINT) median: {statistics.median(stop_s):6.1f} s")
    print(
        f"idle stack memory:    {pss_mib:6.0f} MiB PSS ({rss_mib:.0f} MiB summed RSS); "
        "target < 4096 MiB"
    )


if __name__ == "__main__":
    main()
