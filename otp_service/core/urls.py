"""Tenant event URLs and request forgery (API.md): https only, and never an address inside.

A tenant could otherwise make the service POST to its own network (Redis, cloud metadata
at 169.254.169.254, admin ports). The rule is checked on the addresses the host resolves
to, not on its name; resolving is I/O and happens in the caller.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def parse_event_url(url: str) -> tuple[str, str] | None:
    """Return ``(scheme, host)`` of a well-formed absolute http(s) URL, else ``None``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not host:
        return None
    return parts.scheme, host


def is_public_address(address: str) -> bool:
    """Tell whether an IP address is globally routable (not loopback, private, link-local...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def event_url_problem(url: str, addresses: list[str], *, allow_private: bool) -> str | None:
    """Say what is wrong with an event URL, given the addresses its host resolves to.

    With ``allow_private`` (local development and tests) any http(s) URL is accepted.
    """
    parsed = parse_event_url(url)
    if parsed is None:
        return "must be an absolute http(s) URL"
    if allow_private:
        return None
    if parsed[0] != "https":
        return "must use https"
    if not addresses:
        return "its host does not resolve"
    if not all(is_public_address(address) for address in addresses):
        return "must not point to a loopback, private or link-local address"
    return None
