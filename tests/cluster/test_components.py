"""What `finone up` deploys, and what it leaves to something else."""

from __future__ import annotations

import contextlib
import socket

import pytest

from actors.simulated.venue import SIMULATED_VENUE_ACTOR_NAME, SimulatedVenueReport
from cluster.components import components_to_deploy, simulated_venue
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
