"""What `finone up` deploys, and what it leaves to something else."""

from __future__ import annotations

import contextlib
import socket

import pytest
from msgspec.structs import replace

from actors.retrain_scheduler import RetrainProgress, RetrainReport
from actors.simulated.venue import SIMULATED_VENUE_ACTOR_NAME, SimulatedVenueReport
from cluster.components import components_to_deploy, simulated_venue
from cluster.components.retrain import RetrainComponent
from cluster.ports import free_port
from core.errors import PlatformError
from core.named_actors import actor_report
from core.settings import Settings


def test_every_component_is_deployed_unless_skipped() -> None:
    everything = [c.name for c in components_to_deploy(Settings())]
    assert everything == ["recorder", "alerts", "retrain", "feeds", "serve"]

    without_serve = components_to_deploy(Settings(skip_components=["serve"]))
    assert [c.name for c in without_serve] == ["recorder", "alerts", "retrain", "feeds"]


def test_demo_deploys_its_simulated_venue_before_the_feeds_that_stream_it() -> None:
    demo = [c.name for c in components_to_deploy(Settings(demo=True))]
    assert demo == ["recorder", "alerts", "retrain", "simulated-venue", "feeds", "serve"]


def test_skipping_a_component_that_does_not_exist_says_which_do() -> None:
    with pytest.raises(PlatformError, match=r"names no component: srve \(components: recorder, "):
        components_to_deploy(Settings(skip_components=["srve"]))


def test_retrain_status_line_says_how_far_a_run_is_and_how_long_the_last_took() -> None:
    waiting = RetrainReport(
        state="waiting",
        detail="no run yet",
        runs=0,
        last_run_at=None,
        last_run_duration_s=None,
        decisions=[],
        instruments=["alpaca:IBM"],
        intervals=["1d"],
        interval=None,
        started_at=None,
        elapsed_s=None,
        progress=None,
    )
    starting = replace(
        waiting, state="training", detail="started (schedule)", started_at=1e9, elapsed_s=4.4
    )
    trial = "trial 3/8 (gru, 12 epochs)"
    searching = replace(
        starting,
        detail=f"running (schedule): {trial} done",
        elapsed_s=72.4,
        progress=RetrainProgress(phase="search", done=3, total=8, unit=trial),
    )
    finished = replace(
        waiting,
        state="idle",
        detail="last run 3f9c (schedule)",
        runs=1,
        last_run_at=1e9 + 3_930,
        last_run_duration_s=3_930.0,
    )
    failed = replace(finished, state="failed", detail="PlatformError: no signing key")

    checks = [
        RetrainComponent().check(report)
        for report in (waiting, starting, searching, finished, failed)
    ]

    assert [check.detail for check in checks] == [
        "waiting: no run yet; 0 run(s)",
        "training: 4s elapsed; started (schedule); 0 run(s)",
        f"training: search 3 of 8, 1m 12s elapsed; running (schedule): {trial} done; 0 run(s)",
        "idle: last run 3f9c (schedule), took 1h 05m; 1 run(s)",
        "failed: PlatformError: no signing key; 1 run(s)",
    ]
    assert [check.ok for check in checks] == [True, True, True, True, False]


def test_simulated_venue_whose_port_was_taken_before_it_listened_listens_on_another(
    ray_cluster: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The port is chosen by the deploying driver and bound later by the actor; in CI a port
    # chosen free was taken in between, and the demo did not start.
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        chosen = iter([taken_port, free_port()])
        monkeypatch.setattr(simulated_venue, "free_port", lambda: next(chosen))
        component = simulated_venue.SimulatedVenueComponent()
        settings = Settings(demo=True, startup_timeout_s=30)
        component.deploy(settings)
        try:
            [check] = component.health(settings)
            assert check.ok, check.detail
            report = actor_report(SIMULATED_VENUE_ACTOR_NAME, SimulatedVenueReport)
            assert report.url.startswith("ws://127.0.0.1:")
            assert f":{taken_port}/" not in report.url
        finally:
            component.stop(settings)
