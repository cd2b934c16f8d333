"""What `finone up` deploys, and what it leaves to something else."""

from __future__ import annotations

import pytest

from cluster.components import components_to_deploy
from cluster.errors import PlatformError
from cluster.settings import Settings


def test_every_component_is_deployed_unless_skipped() -> None:
    everything = [c.name for c in components_to_deploy(Settings())]
    assert everything == ["recorder", "alerts", "retrain", "feeds", "serve"]

    without_serve = components_to_deploy(Settings(skip_components=["serve"]))
    assert [c.name for c in without_serve] == ["recorder", "alerts", "retrain", "feeds"]


def test_skipping_a_component_that_does_not_exist_says_which_do() -> None:
    with pytest.raises(PlatformError, match=r"names no component: srve \(components: recorder, "):
        components_to_deploy(Settings(skip_components=["srve"]))
