from __future__ import annotations

from cluster.ports import free_port
from core.health import check_mlflow, check_postgres, check_redis, check_services


async def test_checks_of_live_services_are_healthy(
    redis_url: str, database_url: str, mlflow_url: str
) -> None:
    checks = await check_services(redis_url, database_url, mlflow_url, timeout_s=5)
    assert [c.name for c in checks] == ["redis", "postgres", "mlflow"]
    assert all(c.ok for c in checks), checks
    assert all(c.latency_ms is not None and c.latency_ms > 0 for c in checks)


async def test_check_of_redis_with_wrong_password_fails_without_leaking_it(redis_url: str) -> None:
    wrong = redis_url.replace("redis://:", "redis://:wrong-password-", 1)
    check = await check_redis(wrong, timeout_s=2)
    assert not check.ok
    assert "wrong-password" not in check.detail


async def test_check_of_postgres_on_closed_port_fails_clearly() -> None:
    url = f"postgresql://postgres:secret-pw@127.0.0.1:{free_port()}/finone"
    check = await check_postgres(url, timeout_s=2)
    assert not check.ok
    assert check.detail
    assert "secret-pw" not in check.detail


async def test_check_of_mlflow_on_closed_port_fails_clearly() -> None:
    check = await check_mlflow(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    assert not check.ok
    assert "Connect" in check.detail
