"""Name resolution for outbound webhooks: the addresses a host name stands for."""

from __future__ import annotations

import asyncio
import ipaddress
import socket


async def resolve(host: str) -> list[str]:
    """Return the addresses ``host`` resolves to (itself for an IP literal; none on failure)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return [str(info[4][0]) for info in infos]
