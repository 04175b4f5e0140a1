"""Tenant event URLs and request forgery (API.md): https only, and never an address inside.

A tenant could otherwise make the service POST to its own network (Redis, cloud metadata
at 169.254.169.254, admin ports). The rule is checked on the addresses the host resolves
to, not on its name; resolving is I/O and happens in the caller.

The URL itself is held to a strict syntax when it is written, so that what is stored is
exactly what the poster will contact and nothing it can choke on later:

- printable ASCII only, no spaces or control characters (a trailing CR LF would be
  stripped by one parser and refused by another); an internationalised host name is given
  in its ``xn--`` (punycode) form, so the stored name is the one resolved;
- the host is a DNS name whose last label starts with a letter, a dotted-quad IPv4
  address or a bracketed IPv6 address without a zone: the other spellings of an address
  that C resolvers accept (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are
  refused outright rather than left to the resolver's reading;
- a port, if any, from 1 to 65535, and at most 2048 characters in all;
- credentials (``https://user:password@host/``) are allowed, since some receivers take
  basic authentication only; they are sent, never logged (see ``otp_service.log``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, NamedTuple
from urllib.parse import urlsplit

MAX_EVENT_URL_LENGTH: Final = 2048

_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME: Final = re.compile(rf"^(?:{_LABEL}\.)*[a-z](?:[a-z0-9-]{{0,61}}[a-z0-9])?$")
_DOTTED_QUAD: Final = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_MAX_NAME_LENGTH: Final = 253

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
"""RFC 6052's well-known prefix: the last 32 bits are the IPv4 address reached."""
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
"""RFC 8215's local-use prefix: where the IPv4 address sits is the operator's choice."""
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
"""Deprecated IPv4-compatible addresses (``::a.b.c.d``), still routed by some stacks."""


class InvalidEventUrl(ValueError):
    """An event URL that breaks the syntax rules; the message says which."""


class EventUrl(NamedTuple):
    """The parts of a well-formed event URL the poster needs (``host`` lower-case, bare).

    ``literal`` is true for an IP address: it is judged as it stands, never resolved.
    """

    scheme: str
    host: str
    port: int | None
    literal: bool

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: what may be logged of the URL.

        Credentials, path and query are left out: a receiver's secret may sit in any of them.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port else "")


def parse_event_url(url: str) -> EventUrl:
    """Check an event URL's syntax and return its scheme, host and port.

    Raises:
        InvalidEventUrl: the URL breaks one of the rules of this module's docstring.
    """
    if len(url) > MAX_EVENT_URL_LENGTH:
        raise InvalidEventUrl(f"must be at most {MAX_EVENT_URL_LENGTH} characters")
    if not url.isascii():
        raise InvalidEventUrl(
            "must be ASCII: percent-encode other characters, and give an"
            " internationalised host name in its xn-- (punycode) form"
        )
    if any(not "!" <= char <= "~" for char in url):
        raise InvalidEventUrl("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise InvalidEventUrl(
            "must be an absolute http(s) URL with a valid host and port"
        ) from None
    if parts.scheme not in {"http", "https"} or not host:
        raise InvalidEventUrl("must be an absolute http(s) URL")
    if port == 0 or parts.netloc.endswith(":"):
        raise InvalidEventUrl("must have a port from 1 to 65535, or none")
    bracketed = parts.netloc.rsplit("@", 1)[-1].startswith("[")
    literal = _is_ip_literal(host, bracketed=bracketed)
    if not (literal or _is_dns_name(host, bracketed=bracketed)):
        raise InvalidEventUrl(
            "must name its host as a DNS name, a dotted-quad IPv4 address or a"
            " bracketed IPv6 address"
        )
    return EventUrl(parts.scheme, host, port, literal)


def _is_ip_literal(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        return "%" not in host and _ipv6(host) is not None
    if not _DOTTED_QUAD.match(host):
        return False
    try:
        ipaddress.IPv4Address(host)  # refuses leading zeros (octal to C resolvers)
    except ValueError:
        return False
    return True


def _is_dns_name(host: str, *, bracketed: bool) -> bool:
    return not bracketed and len(host) <= _MAX_NAME_LENGTH and _DNS_NAME.match(host) is not None


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 transition address leads to, or ``None`` for a plain one.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``)
    and 6to4 (``2002::/16``) addresses carry one; Teredo (``2001::/32``) carries a server
    and a client. Reaching such an address reaches the IPv4 one, so the IPv4 one is judged.
    """
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)]
    return None


def is_public_address(address: str) -> bool:
    """Tell whether an IP address is globally routable (not loopback, private, link-local...).

    The one judge of addresses, used when settings are written and at each delivery.
    Python's ``is_global`` alone is not enough: it calls ``64:ff9b::a9fe:a9fe`` (the cloud
    metadata address through NAT64) global, so addresses that wrap an IPv4 address are
    judged by the address they wrap, and NAT64's local-use prefix, whose IPv4 address may
    sit anywhere, is refused.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        wrapped = embedded_ipv4(ip)
        if wrapped is not None:
            return all(_is_global(inner) for inner in wrapped)
    return _is_global(ip)


def _is_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def event_url_problem(url: str, addresses: list[str], *, allow_private: bool) -> str | None:
    """Say what is wrong with an event URL, given the addresses its host resolves to.

    With ``allow_private`` (local development and tests) any well-formed http(s) URL is
    accepted; the syntax rules hold either way, so no stored URL can break the poster.
    """
    try:
        parsed = parse_event_url(url)
    except InvalidEventUrl as exc:
        return str(exc)
    if allow_private:
        return None
    if parsed.scheme != "https":
        return "must use https"
    if not addresses:
        return "its host does not resolve"
    if not all(is_public_address(address) for address in addresses):
        return "must not point to a loopback, private or link-local address"
    return None
