"""Static validation of the deployment files (no Docker engine or cloud account here)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import ray.autoscaler
import yaml
from ray.serve.schema import ServeDeploySchema

from cluster.components import components_to_deploy
from cluster.ingress import REQUEST_PATH_ENV
from core.settings import Settings
from serve.app import APP_NAME, Forecaster, Gateway, application
from serve.serve_config import SERVE_CONFIG, deployment_options

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
RAYSERVICE = "deploy/kuberay/rayservice.yaml"
PLATFORM_IMAGE = "finone/platform:latest"
PLATFORM_SECRET = "finone-secrets"
SECRET_ENV = (
    "REDIS_URL",
    "DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "FINONE_SECRET_KEY",
    "RAY_AUTH_TOKEN",
)
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+):\?")


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
    for service in ("redis", "postgres", "mlflow", "ray-head", "prometheus", "grafana"):
        assert "healthcheck" in compose["services"][service], service


def volume_mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (source, mode) of a compose service's short-syntax volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def test_compose_monitoring_services_share_the_heads_ray_directory_read_only() -> None:
    compose = load("docker-compose.yml")
    services = compose["services"]
    volumes = compose["volumes"]
    head = volume_mounts(services["ray-head"])
    shared, mode = head["/tmp/ray"]
    assert shared in volumes and mode == "rw"
    # A fresh volume is root's; the head runs as the image's user and must write there first.
    init = services["ray-head"]["depends_on"]["ray-tmp-init"]
    assert init["condition"] == "service_completed_successfully"
    assert volume_mounts(services["ray-tmp-init"])["/tmp/ray"][0] == shared

    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:")
    mounts = volume_mounts(prometheus)
    assert mounts["/tmp/ray"] == (shared, "ro")
    assert mounts["/etc/prometheus/prometheus.yml"] == ("./dashboards/prometheus.yml", "ro")
    data, _ = mounts["/prometheus"]
    assert data in volumes
    assert "/-/ready" in " ".join(prometheus["healthcheck"]["test"])

    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = volume_mounts(grafana)
    assert mounts["/tmp/ray"] == (shared, "ro")
    assert mounts["/etc/grafana/provisioning"] == ("./dashboards/grafana/provisioning", "ro")
    assert mounts["/var/lib/grafana/dashboards"] == ("./dashboards/grafana/dashboards", "ro")
    for source, _ in mounts.values():
        assert source in volumes or (ROOT / source).exists(), source
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    assert "3000:3000" in grafana["ports"]
    assert "${GRAFANA_ADMIN_PASSWORD:?" in grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_every_secret_compose_requires_is_in_env_example() -> None:
    required = set(REQUIRED_VARIABLE.findall((ROOT / "docker-compose.yml").read_text()))
    assert {
        "FINONE_SECRET_KEY",
        "REDIS_PASSWORD",
        "POSTGRES_PASSWORD",
        "FINONE_DB_PASSWORD",
        "MLFLOW_DB_PASSWORD",
        "RAY_AUTH_TOKEN",
    } <= required
    assert "GRAFANA_ADMIN_PASSWORD" in required
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert required <= listed, required - listed


def test_compose_clients_of_postgres_are_not_its_superuser() -> None:
    compose = load("docker-compose.yml")
    postgres = compose["services"]["postgres"]
    # The image's superuser is `postgres` unless POSTGRES_USER names another.
    superuser = postgres["environment"].get("POSTGRES_USER", "postgres")
    init = compose["configs"]["postgres-roles"]["content"]
    clients = {
        "ray-head": compose["services"]["ray-head"]["environment"]["DATABASE_URL"],
        "mlflow": next(
            arg for arg in compose["services"]["mlflow"]["command"] if "backend-store" in arg
        ),
        "mlflow auth": compose["configs"]["mlflow-auth"]["content"],
    }
    for client, text in clients.items():
        (user,) = set(re.findall(r"postgresql://([a-z_]+):", text))
        assert user != superuser, client
        assert re.search(rf"CREATE ROLE {user} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE", init)
    assert "REVOKE ALL ON DATABASE finone, mlflow, mlflow_auth, postgres FROM PUBLIC" in init
    # Init scripts run on the server's socket only: ready means reachable over TCP, as the role.
    assert postgres["healthcheck"]["test"][1:] == [
        "pg_isready",
        "-h",
        "127.0.0.1",
        "-U",
        "finone",
        "-d",
        "finone",
    ]


# Each answers only who signs in: the gateway (tokens), the Ray dashboard (Ray's token) and
# Grafana (its admin password). Everything else is published on this host's loopback only.
AUTHENTICATED_PORTS = {("ray-head", "8000"), ("ray-head", "8265"), ("grafana", "3000")}


def test_compose_publishes_no_unauthenticated_port_beyond_this_host() -> None:
    compose = load("docker-compose.yml")
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            *host, published, _ = f"0.0.0.0:{port}".split(":")[-3:]
            if (name, published) in AUTHENTICATED_PORTS:
                continue
            assert host == ["127.0.0.1"], f"{name} publishes {port} to every interface"


def test_makefile_starts_the_compose_stack() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^compose-up:.*## .+\n\t(.+)$", makefile, re.MULTILINE)
    assert target, "make compose-up is missing or undocumented"
    assert target.group(1).strip() == "docker compose up -d --build --scale ray-worker=2"


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


def ray_containers(service: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"]["containers"][0] for group in groups]


def test_rayservice_serves_the_same_application_as_the_serve_config() -> None:
    service = load(RAYSERVICE)
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    serve_config = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(serve_config)
    assert serve_config["applications"] == load("serve/serve_config.yaml")["applications"]


def test_rayservice_cluster_runs_the_platform_image_with_secrets_and_autoscaling() -> None:
    cluster = load(RAYSERVICE)["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0

    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    head_ports = {
        p["name"]: p["containerPort"] for p in ray_containers(load(RAYSERVICE))[0]["ports"]
    }
    assert head_ports["dashboard"] == 8265 and head_ports["serve"] == 8000

    (workers,) = cluster["workerGroupSpecs"]
    assert 0 < workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    assert workers["minReplicas"] < workers["maxReplicas"]

    # KubeRay reads the Ray token from the Secret under `auth_token`; the pods get the same one.
    assert cluster["authOptions"] == {"mode": "token", "secretName": PLATFORM_SECRET}
    for container in ray_containers(load(RAYSERVICE)):
        assert container["image"] == PLATFORM_IMAGE
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {variable["name"]: variable for variable in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        for name in SECRET_ENV:
            assert "value" not in env[name], f"{name} must come from the Secret"
            reference = env[name]["valueFrom"]["secretKeyRef"]
            assert reference["name"] == PLATFORM_SECRET, name
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "auth_token"


def test_rayservice_head_runs_the_rest_of_the_platform_beside_kuberays_serve() -> None:
    head = load(RAYSERVICE)["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (platform,) = [c for c in head["containers"] if c["name"] == "platform"]
    assert platform["command"] == ["finone", "up"]
    env = {variable["name"]: variable.get("value") for variable in platform["env"]}
    assert env["FINONE_RAY_ADDRESS"] == "127.0.0.1:6379"  # the head's GCS, in the same pod
    # finone up deploys everything but what KubeRay owns, and knows each name it is told.
    settings = Settings(skip_components=json.loads(env["FINONE_SKIP_COMPONENTS"]))
    assert [c.name for c in components_to_deploy(settings)] == [
        "recorder",
        "alerts",
        "retrain",
        "feeds",
    ]


def test_dockerfile_with_every_package_copies_each_before_installing() -> None:
    with open(ROOT / "pyproject.toml", "rb") as file:
        packaged = tomllib.load(file)["tool"]["setuptools"]["packages"]["find"]["include"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))
    assert {pattern.rstrip("*") for pattern in packaged} <= copied


def test_dockerfile_with_web_stage_serves_the_app_it_built() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]
    web = next(stage for stage in stages if stage.startswith("node:"))
    assert "npm ci" in web and "npm run build" in web and "openapi.json" in web
    final = stages[-1]
    copied = re.search(r"^COPY --from=web /web/dist (\S+)$", final, flags=re.MULTILINE)
    assert copied is not None
    served = re.search(r"^ENV FINONE_WEB_DIST=(\S+)$", final, flags=re.MULTILINE)
    assert served is not None
    workdir = re.findall(r"^WORKDIR (\S+)$", stages[0], flags=re.MULTILINE)[-1]
    assert Path(workdir, copied.group(1)).resolve() == Path(served.group(1))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"web/node_modules", "web/dist"} <= set(ignored)


# What `finone up` gives a head it starts (cluster/ingress.py), wherever Ray nodes start
# otherwise: HAProxy ingress, through the launcher that keeps its side listeners on loopback,
# and Serve's throughput-optimized request path.
def _runs_haproxy_ingress(env: dict[str, str]) -> bool:
    return (
        REQUEST_PATH_ENV.items() <= env.items()
        and env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"
        and env.get("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S") == "5"
        and env.get("RAY_SERVE_HAPROXY_BINARY_PATH", "").rstrip(")").endswith("finone-haproxy")
    )


def test_every_ray_node_started_outside_finone_up_takes_haproxy_ingress_through_the_launcher() -> (
    None
):
    compose = load("docker-compose.yml")["services"]
    assert compose["ray-head"]["command"] == ["finone", "up"]
    worker_env = {k: str(v) for k, v in compose["ray-worker"]["environment"].items()}
    assert _runs_haproxy_ingress(worker_env), worker_env

    for container in ray_containers(load(RAYSERVICE)):
        env = {v["name"]: str(v.get("value", "")) for v in container["env"]}
        assert _runs_haproxy_ingress(env), container["name"]

    launcher = load("ray-cluster.yaml")
    commands = launcher["head_start_ray_commands"] + launcher["worker_start_ray_commands"]
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assignments = dict(re.findall(r"(RAY_SERVE_\w+)=(\$\(command -v \S+\)|\S+)", command))
        assert _runs_haproxy_ingress(assignments), command


def test_the_image_installs_the_launcher_where_the_manifests_name_it() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["finone-haproxy"] == "cluster.haproxy_launcher:main"
    dockerfile = (ROOT / "Dockerfile").read_text()
    # `pip install .` on the python image puts console scripts in /usr/local/bin.
    assert "FROM python:3.11-slim" in dockerfile and "pip install . " in dockerfile
