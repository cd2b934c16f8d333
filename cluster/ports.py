"""Port checks: what the stack needs to bind must be free before anything starts."""

from __future__ import annotations

import contextlib
import random
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


# Above Ray's default worker ports (10002-19999) and below the kernel's ephemeral range (Linux
# starts it at 32768, macOS at 49152): a port picked here cannot be taken in the meantime by an
# outgoing connection or by a Ray worker that binds port 0, which a port the kernel handed out
# for an ephemeral bind can (a listener that started a second later found it in use).
_UNCONTENDED_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now, from a band no ephemeral bind draws from, for internal listeners."""
    for _ in range(200):
        port = random.choice(_UNCONTENDED_PORTS)
        if port not in _handed_out and port_is_free(host, port):
            _handed_out.add(port)
            return port
    raise RuntimeError(
        f"no free port between {_UNCONTENDED_PORTS.start} and {_UNCONTENDED_PORTS.stop - 1}"
    )
