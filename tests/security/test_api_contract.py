"""The API's contract is exact: schemathesis' own CLI with every check against the running
gateway, as a signed-in admin. Generated clients (the web app's included) trust the OpenAPI
document: every status an operation answers is in it, every rule a request must follow too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from core.settings import Settings
from tests.serve.auth_api import Session
from tests.serve.champions import Champions

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
ROOT = Path(__file__).resolve().parents[2]


async def test_every_operation_answers_as_its_schema_says_under_every_check(
    http: httpx.AsyncClient,
    admin: Session,
    gateway_url: str,
    gateway_settings: Settings,
    second_champions: Champions,
    retrain_scheduler: None,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.security.schemathesis_hooks",
        "FINONE_CONTRACT_GATEWAY": gateway_url,
        "FINONE_CONTRACT_DATABASE_URL": gateway_settings.required_database_url,
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [
            SCHEMATHESIS,
            "run",
            f"{gateway_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "10",
            "--workers",
            "1",
            "--seed",
            "1",
            "--no-color",
            "--request-timeout",
            "30",
            "--report-dir",
            str(tmp_path),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1_200,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2_000:] + _failures(result.stdout)
    # The run reached the admin operations with ids it listed, but only its own accounts and
    # keys: an admin signed in before it (the suite's) is still signed in and still an admin.
    still = await http.get(f"{gateway_url}/v1/admin/users", headers=admin.headers)
    assert still.status_code == 200, still.text


def _failures(report: str) -> str:
    """The run's summary, then its failures section (which operation, the request to
    reproduce it) last: a CI log keeps little of a long report, and that little is its end."""
    start = report.find("= FAILURES =")
    end = report.find("= WARNINGS =", start)
    if start < 0:
        return report[-20_000:]
    summary = report[report.find("= SUMMARY =") :][:3_000]
    return summary + "\n[...]\n" + report[start : end if end > 0 else None][:8_000]
