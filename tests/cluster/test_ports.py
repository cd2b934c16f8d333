"""Ports the stack picks for its internal listeners must still be free when the listener binds."""

from __future__ import annotations

import socket
from pathlib import Path

from cluster.ports import free_port

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_internal_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = (int(bound) for bound in _EPHEMERAL_RANGE.read_text().split())
    ports = [free_port() for _ in range(50)]

    assert len(set(ports)) == len(ports)
    # Outgoing connections and Ray workers binding port 0 draw from this range at any moment.
    assert not [port for port in ports if low <= port <= high]
    for port in ports[:5]:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen()
