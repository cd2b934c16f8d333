"""The forecasting targets, judged on daily index history nothing here is tuned on.

The S&P 500 and the NASDAQ Composite, 1999 to 2018 (``training.held_out``), go through what a
retrain does: a Ray Tune search per target on the history before the first walk-forward test
window (a local Ray cluster, trials logged to a temporary embedded MLflow server), then each
target's winner trained afresh on every fold's training rows, calibrated on its validation
window and scored beside every baseline on the test windows. Prints both score tables
(markdown), the targets met or missed, and the time each part took.
``--data bundled`` does the same on the bundled stock history (AAPL, GOOG, IBM, MSFT).
Run with `make bench` or `.venv/bin/python bench/bench_forecasts.py [--folds 8 ...]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_training import local_ray, mlflow_server, pooled_history  # noqa: E402

from training.evaluation import WalkForward, all_forecasts, all_scores, best_baselines  # noqa: E402
from training.held_out import held_out_table  # noqa: E402
from training.report import score_tables  # noqa: E402
from training.search import SearchSettings, run_search  # noqa: E402

# The targets: each champion's loss over the best baseline's, and the 80% coverage.
VOL_TARGET = 0.95
RETURNS_TARGET = 0.98
COVERAGE = (0.78, 0.82)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", choices=("held-out", "bundled"), default="held-out")
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--test-size", type=int, default=250)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=15, help="most epochs a trial may train")
    parser.add_argument("--members", type=int, default=1, help="networks per champion")
    args = parser.parse_args()

    table = held_out_table() if args.data == "held-out" else pooled_history()
    plan = WalkForward(folds=args.folds, test_size=args.test_size)
    settings = SearchSettings(samples=args.samples, max_epochs=args.epochs, members=args.members)
    with tempfile.TemporaryDirectory(prefix="finone-bench-") as tmp:
        with mlflow_server(Path(tmp)) as tracking_uri, local_ray():
            started = time.monotonic()
            outcome = run_search(
                table, plan, settings, tracking_uri, "bench-forecasts", Path(tmp) / "tune"
            )
            search_s = time.monotonic() - started
    # One configuration that won both targets is judged once, as the pipeline logs it once.
    same = outcome.configs["returns"] == outcome.configs["volatility"]
    candidates = {
        "returns": "champion" if same else "returns_champion",
        "volatility": "champion" if same else "vol_champion",
    }
    configs = {candidates[target]: config for target, config in outcome.configs.items()}
    started = time.monotonic()
    forecasts = all_forecasts(table, plan, configs)
    judged_s = time.monotonic() - started
    names = list(configs)
    scores = all_scores(forecasts, names, plan)

    instruments = ", ".join(sorted(table["instrument"].unique()))
    print(f"data: {instruments}; {plan.folds} folds of {plan.test_size} bars")
    for name, config in configs.items():
        print(f"{name}: {config}")
    for score_table in score_tables(scores, names, plan, len(forecasts)):
        print(score_table.markdown())
    best_returns, best_vol = best_baselines(scores)
    returns = scores[candidates["returns"]]
    vol = scores[f"{candidates['volatility']}_vol"]
    checks = [
        (
            f"volatility champion QLIKE / {best_vol}'s <= {VOL_TARGET}",
            vol["qlike"] / scores[f"{best_vol}_vol"]["qlike"],
            vol["qlike"] / scores[f"{best_vol}_vol"]["qlike"] <= VOL_TARGET,
        ),
        (
            f"returns champion pinball / {best_returns}'s <= {RETURNS_TARGET}",
            returns["pinball"] / scores[best_returns]["pinball"],
            returns["pinball"] / scores[best_returns]["pinball"] <= RETURNS_TARGET,
        ),
        (
            f"returns champion 80% coverage in [{COVERAGE[0]}, {COVERAGE[1]}]",
            returns["coverage_80"],
            COVERAGE[0] <= returns["coverage_80"] <= COVERAGE[1],
        ),
        ("returns champion Diebold-Mariano p < 0.05", returns["dm_p"], returns["dm_p"] < 0.05),
        ("volatility champion Diebold-Mariano p < 0.05", vol["dm_p"], vol["dm_p"] < 0.05),
    ]
    for text, value, met in checks:
        print(f"{'met ' if met else 'MISS'}  {text}: {value:.4f}")
    print(
        f"search: {search_s:.1f} s wall ({outcome.trials} trials); walk-forward judging of "
        f"{len(configs)} champion(s) and {len(forecasts):,} forecasts of every baseline: "
        f"{judged_s:.1f} s"
    )


if __name__ == "__main__":
    main()
