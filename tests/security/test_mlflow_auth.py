"""MLflow behind its own basic auth: anonymous callers of the real tracking server's REST API can
neither log runs nor register models nor move the ``champion`` alias; the platform's service
account can; a person added by the admin reads everything and changes nothing; the server's
process holds none of the platform's secrets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from cluster.embedded_mlflow import ADMIN_USERNAME, EmbeddedMlflow, admin_password_path


@dataclass(frozen=True, slots=True)
class Champion:
    """A registered model whose ``champion`` alias the service account set."""

    experiment_id: str
    run_id: str
    model: str
    version: str


@pytest.fixture
def champion(mlflow_url: str) -> Champion:
    # The service account of the session: MLflow's client reads it from the environment.
    client = MlflowClient(mlflow_url)
    experiment_id = client.create_experiment(f"auth-{uuid.uuid4().hex[:8]}")
    run_id = client.create_run(experiment_id).info.run_id
    model = f"auth-model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(model)
    version = client.create_model_version(model, f"runs:/{run_id}/model", run_id).version
    client.set_registered_model_alias(model, "champion", version)
    return Champion(experiment_id, run_id, model, str(version))


@pytest.fixture
def anonymous(mlflow_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{mlflow_url}/api/2.0/mlflow", timeout=30) as client:
        yield client


def _champion_version(mlflow_url: str, model: str) -> str:
    return str(MlflowClient(mlflow_url).get_model_version_by_alias(model, "champion").version)


def test_mlflow_with_an_anonymous_caller_refuses_every_write(
    mlflow_url: str, champion: Champion, anonymous: httpx.Client
) -> None:
    attempts = [
        ("runs/create", {"experiment_id": champion.experiment_id}),
        ("experiments/create", {"name": f"anonymous-{uuid.uuid4().hex[:8]}"}),
        ("registered-models/create", {"name": f"anonymous-{uuid.uuid4().hex[:8]}"}),
        (
            "model-versions/create",
            {"name": champion.model, "source": f"runs:/{champion.run_id}/model"},
        ),
        ("registered-models/alias", {"name": champion.model, "alias": "champion", "version": "1"}),
        ("users/create", {"username": "intruder", "password": "a-password-of-some-length"}),
    ]
    for path, body in attempts:
        response = anonymous.post(path, json=body)
        assert response.status_code == 401, (path, response.status_code, response.text)
    assert (
        anonymous.get("registered-models/get", params={"name": champion.model}).status_code == 401
    )
    # Nothing moved: the alias still names the service account's version.
    assert _champion_version(mlflow_url, champion.model) == champion.version


def test_mlflow_with_a_wrong_password_refuses_the_service_account(
    mlflow_url: str, champion: Champion, anonymous: httpx.Client
) -> None:
    response = anonymous.post(
        "registered-models/alias",
        json={"name": champion.model, "alias": "champion", "version": champion.version},
        auth=("finone-service", "not-the-password"),
    )

    assert response.status_code == 401


def test_mlflow_with_a_person_the_admin_added_reads_but_cannot_promote(
    mlflow_url: str, data_dir: Path, champion: Champion, anonymous: httpx.Client
) -> None:
    admin = (ADMIN_USERNAME, admin_password_path(data_dir).read_text().strip())
    person = (f"quant-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    created = anonymous.post(
        "users/create", json={"username": person[0], "password": person[1]}, auth=admin
    )
    assert created.status_code == 200, created.text

    read = anonymous.get("registered-models/get", params={"name": champion.model}, auth=person)
    promote = anonymous.post(
        "registered-models/alias",
        json={"name": champion.model, "alias": "champion", "version": champion.version},
        auth=person,
    )
    log = anonymous.post("runs/create", json={"experiment_id": champion.experiment_id}, auth=person)

    assert read.status_code == 200
    assert promote.status_code == 403
    assert log.status_code == 403


def test_mlflow_server_process_inherits_none_of_the_platforms_secrets(tmp_path: Path) -> None:
    launcher_env = {
        "PATH": "/usr/bin:/bin",
        "FINONE_SECRET_KEY": "the-platform-secret",
        "FINONE_ADMIN_PASSWORD": "the-admin-password",
        "DATABASE_URL": "postgresql://postgres:pw@127.0.0.1/finone",
        "REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
    }

    server = EmbeddedMlflow(tmp_path, "127.0.0.1", 5999, launcher_env)

    passed = "\n".join(f"{name}={value}" for name, value in server.process.env.items())
    for secret in ("the-platform-secret", "the-admin-password", ":pw@"):
        assert secret not in passed
    assert server.process.env["PATH"] == "/usr/bin:/bin"
    # The admin's bootstrap password is in a file only its owner reads.
    assert (server.dir / "basic_auth.ini").stat().st_mode & 0o077 == 0
