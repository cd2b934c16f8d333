"""Static validation of the deployment files (no Docker engine or cloud account here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.serve.schema import ServeDeploySchema

from cluster.settings import Settings
from serve.app import APP_NAME, Forecaster, Gateway, application
from serve.component import SERVE_CONFIG, deployment_options

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.skipif(not COMPOSE_SCHEMA.exists(), reason="compose schema in ../shared is absent")
def test_compose_file_conforms_to_compose_specification() -> None:
    # The file names draft-07 by an https URL jsonschema does not recognise; say it outright.
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(load("docker-compose.yml"))


def test_compose_platform_services_use_external_services_and_secrets_from_env() -> None:
    compose = load("docker-compose.yml")
    head = compose["services"]["ray-head"]
    assert head["command"] == ["finone", "up"]
    environment = head["environment"]
    for variable in ("REDIS_URL", "DATABASE_URL", "MLFLOW_TRACKING_URI", "FINONE_SECRET_KEY"):
        assert variable in environment
    assert "${FINONE_SECRET_KEY:?" in environment["FINONE_SECRET_KEY"]
    for service in ("redis", "postgres", "mlflow", "ray-head"):
        assert "healthcheck" in compose["services"][service], service


def test_compose_files_it_builds_from_exist() -> None:
    compose = load("docker-compose.yml")
    for service in compose["services"].values():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()


def test_ray_cluster_launcher_config_conforms_to_the_schema_ray_ships() -> None:
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    jsonschema.validate(load("ray-cluster.yaml"), json.loads(schema_path.read_text()))


def test_serve_config_is_a_valid_serve_deploy_config_for_the_app_finone_up_deploys() -> None:
    config = ServeDeploySchema.model_validate(yaml.safe_load(SERVE_CONFIG.read_text()))
    (app,) = config.applications
    assert (app.name, app.import_path) == (APP_NAME, "serve.app:build_app")
    options = deployment_options()
    assert set(options) == {Gateway.name, Forecaster.name}
    for name, deployment_options_ in options.items():
        autoscaling = deployment_options_["autoscaling_config"]
        assert 1 <= autoscaling["min_replicas"] < autoscaling["max_replicas"], name
    # What `finone up` binds carries the file's autoscaling, not the code's defaults.
    bound = application(Settings(environment="development"), options)
    forecaster = bound._bound_deployment.init_args[1]._bound_deployment  # type: ignore[union-attr]
    assert forecaster._deployment_config.autoscaling_config.max_replicas == 4
