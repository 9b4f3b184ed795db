"""The TCP ports the devnet and the bench bind on 127.0.0.1, checked before anything starts.

`check_free` takes every port a command is about to bind, each with what it is for and the option
that moves it, and raises `PortBusy` (a ConfigError: one line, no traceback in the CLI) naming the
first one something else already holds, e.g.::

    port 8701 on 127.0.0.1 is already in use (API of node market): stop what holds it, or pass another --node-port

The probe binds the port the way the servers will (SO_REUSEADDR, as uvicorn does), so a port that
only has connections in TIME_WAIT from an earlier run counts as free, and one with a listener (or a
socket bound without SO_REUSEADDR) counts as busy.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass

from node.protocol.errors import ConfigError

HOST = "127.0.0.1"
MAX_PORT = 65535


class PortBusy(ConfigError):
    """A port the command must bind is taken (or out of range)."""


@dataclass(frozen=True)
class Port:
    """One port a command will bind: the number, what listens there, and the option that moves it."""

    number: int
    what: str
    option: str


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could bind `host:port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_range(first: int, n: int, what: str, option: str) -> list[Port]:
    """`n` consecutive ports from `first` (`what` may hold `{i}`, the position from 0); PortBusy
    when the range runs past 65535."""
    if n and not 1 <= first <= MAX_PORT - n + 1:
        raise PortBusy(f"{option} {first} leaves no room for {n} port{'s' if n != 1 else ''} "
                       f"(the last would be {first + n - 1}; ports go up to {MAX_PORT}): pick a lower {option}")
    return [Port(first + i, what.format(i=i), option) for i in range(n)]


def check_free(ports: Iterable[Port], host: str = HOST) -> None:
    """Raise PortBusy for the first of `ports` that is taken, or listed twice."""
    seen: dict[int, Port] = {}
    for port in ports:
        if not 1 <= port.number <= MAX_PORT:
            raise PortBusy(f"{port.option} {port.number} is not a TCP port (1..{MAX_PORT})")
        if port.number in seen:
            other = seen[port.number]
            raise PortBusy(f"port {port.number} would serve both {other.what} ({other.option}) and {port.what} "
                           f"({port.option}): give them ports that do not overlap")
        seen[port.number] = port
        if not port_free(port.number, host):
            raise PortBusy(f"port {port.number} on {host} is already in use ({port.what}): stop what holds it, "
                           f"or pass another {port.option}")
