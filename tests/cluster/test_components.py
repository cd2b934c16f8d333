"""What `finone up` deploys, and what it leaves to something else."""

from __future__ import annotations

import pytest

from cluster.components import components_to_deploy
from core.errors import PlatformError
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
