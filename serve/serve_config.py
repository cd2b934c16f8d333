"""The Serve config file of the platform's application (``serve_config.yaml``), which ``serve
deploy``, KubeRay and ``finone up`` all take the deployments' options from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from serve.app import APP_NAME

__all__ = ["SERVE_CONFIG", "deployment_options"]

SERVE_CONFIG = Path(__file__).with_name("serve_config.yaml")


def deployment_options(path: Path = SERVE_CONFIG) -> dict[str, dict[str, Any]]:
    """Deployment name -> its options in the Serve config file's application."""
    config = yaml.safe_load(path.read_text())
    (app,) = (a for a in config["applications"] if a["name"] == APP_NAME)
    return {
        d["name"]: {k: v for k, v in d.items() if k != "name"} for d in app.get("deployments", [])
    }
