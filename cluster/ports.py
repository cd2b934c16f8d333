"""Port checks: what the stack needs to bind must be free before anything starts."""

from __future__ import annotations

import contextlib
import socket

__all__ = ["port_is_free", "free_port"]


def port_is_free(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        # Like the servers themselves: a port left in TIME_WAIT is reusable, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    # Servers that bind every interface would still collide with a listener there.
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now, for internal listeners nobody needs to know."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
