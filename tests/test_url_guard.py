"""The events URL guard against every spelling of an inside address (request forgery).

Three layers are proved here: the syntax of a URL (``parse_event_url``: what may be stored),
the judge of addresses (``is_public_address``: what may be contacted), and the poster that
applies both at each delivery (no request ever leaves for an inside address, whatever DNS
answers, and a redirect is a failed delivery, never followed).
"""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from nacl.signing import SigningKey

from otp_service.adapters.dns import resolve
from otp_service.adapters.event_poster import EventPoster
from otp_service.core.urls import (
    InvalidEventUrl,
    event_url_problem,
    is_public_address,
    parse_event_url,
)

KEY = SigningKey(bytes(range(32)))
PUBLIC = "93.184.215.14"

# Spellings of 127.0.0.1 that C resolvers (inet_aton) accept besides the dotted quad.
NUMERIC_HOSTS = [
    "2130706433",  # decimal
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hex
    "0x7f000001",  # hex, one number
    "017700000001",  # octal, one number
    "127.1",  # short form
    "127.0.1",  # short form
    "0177.1",  # octal short form
]

# IPv6 addresses that lead to an inside IPv4 address (or may, where the place is unknown).
EMBEDDED_INSIDE = [
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:a9fe:a9fe",  # IPv4-mapped metadata address
    "::127.0.0.1",  # IPv4-compatible
    "::a9fe:a9fe",  # IPv4-compatible metadata address
    "64:ff9b::7f00:1",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe",  # NAT64 to the metadata address (Python calls it global)
    "64:ff9b::a00:1",  # NAT64 to 10.0.0.1
    "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix
    "64:ff9b:1::5db8:d70e",  # local-use: where the IPv4 address sits is unknown, so refused
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45 (not routable)
    "2001:0:7f00:1:8000:63bf:a247:28f1",  # Teredo, server 127.0.0.1 (client public)
]

PLAIN_INSIDE = [
    "127.0.0.1",
    "10.0.0.7",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",  # noqa: S104  (a forbidden target, not a bind address)
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
]

OUTSIDE = [
    PUBLIC,
    "2606:4700::1111",
    f"::ffff:{PUBLIC}",
    "64:ff9b::5db8:d70e",  # NAT64 to 93.184.215.14: a v6-only host's way to a public one
    "2002:5db8:d70e::1",  # 6to4 of 93.184.215.14
]


@pytest.mark.parametrize("address", PLAIN_INSIDE + EMBEDDED_INSIDE)
def test_inside_addresses_in_every_form_are_not_public(address: str) -> None:
    """Loopback, private, link-local, metadata and their IPv6 wrappings are all refused."""
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", OUTSIDE)
def test_public_addresses_stay_public_also_when_wrapped(address: str) -> None:
    """The guard refuses by what an address leads to, not by its form."""
    assert is_public_address(address) is True


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.acme.example/otp\r\n", "control characters"),
        ("https://hooks.acme.example/otp\n", "control characters"),
        ("https://hooks.acme.example/o\ttp", "control characters"),
        ("https://hooks.acme.example/o tp", "spaces"),
        ("https://hooks.acme.example/\x00", "control characters"),
        ("https://hooks.acme.example/\x7f", "control characters"),
        (" https://hooks.acme.example/otp", "spaces"),
        ("https://bücher.example/otp", "xn--"),
        ("https://hooks.acme.example/ö", "ASCII"),
        ("https://hooks.acme.example:0/otp", "port"),
        ("https://hooks.acme.example:65536/otp", "port"),
        ("https://hooks.acme.example:/otp", "port"),
        ("https://hooks.acme.example:https/otp", "port"),
        ("https://hooks.acme.example/" + "a" * 2048, "2048"),
        ("ftp://hooks.acme.example/otp", "http(s)"),
        ("//hooks.acme.example/otp", "http(s)"),
        ("hooks.acme.example/otp", "http(s)"),
        ("https:///otp", "http(s)"),
        ("https://[fe80::1%25eth0]/otp", "host"),
        ("https://[::1/otp", "http(s)"),
        ("https://-hooks.acme.example/otp", "host"),
        ("https://hooks_acme.example/otp", "host"),
        ("https://hooks..acme.example/otp", "host"),
        ("https://hooks.acme.example./otp", "host"),
        ("https://256.0.0.1/otp", "host"),
        ("https://127.000.000.001/otp", "host"),
        *((f"https://{host}/otp", "host") for host in NUMERIC_HOSTS),
        *((f"https://{host}:8443/otp", "host") for host in NUMERIC_HOSTS),
    ],
)
def test_malformed_event_urls_are_refused_whatever_the_operator_allows(
    url: str, reason: str
) -> None:
    """The syntax rules hold even with OTP_ALLOW_PRIVATE_WEBHOOKS: a stored URL never breaks
    the poster, and no numeric spelling of an address is left to the resolver's reading."""
    with pytest.raises(InvalidEventUrl, match=re.escape(reason)):
        parse_event_url(url)
    for allow_private in (True, False):
        problem = event_url_problem(url, [PUBLIC], allow_private=allow_private)
        assert problem is not None
        assert reason in problem


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://hooks.acme.example/otp", "hooks.acme.example", None),
        ("https://HOOKS.Acme.Example:8443/otp?x=1#f", "hooks.acme.example", 8443),
        ("https://xn--bcher-kva.example/otp", "xn--bcher-kva.example", None),
        ("https://user:pa%40ss@hooks.acme.example/otp?token=x", "hooks.acme.example", None),
        (f"https://{PUBLIC}/otp", PUBLIC, None),
        ("https://[2606:4700::1111]:443/otp", "2606:4700::1111", 443),
        ("http://localhost:9000/otp", "localhost", 9000),
    ],
)
def test_well_formed_event_urls_are_parsed(url: str, host: str, port: int | None) -> None:
    """Names, punycode, credentials, dotted quads and bracketed IPv6 pass the syntax."""
    parsed = parse_event_url(url)
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize("address", [*EMBEDDED_INSIDE, "::1", "169.254.169.254"])
async def test_ip_literal_urls_to_inside_addresses_are_refused(address: str) -> None:
    """The defect: https://[64:ff9b::7f00:1]/ and its kind were accepted when written."""
    literal = f"[{address}]" if ":" in address else address
    url = f"https://{literal}/otp"
    addresses = await resolve(parse_event_url(url).host)
    problem = event_url_problem(url, addresses, allow_private=False)
    assert problem is not None
    assert "loopback, private or link-local" in problem


def _poster(
    seen: list[httpx.Request],
    addresses: dict[str, list[str]],
    *,
    allow_private: bool = False,
    status: int = 204,
    follow_redirects: bool = False,
) -> EventPoster:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers={"location": "http://127.0.0.1:6379/"})

    async def resolver(host: str) -> list[str]:
        return addresses.get(host, [PUBLIC])

    http = httpx.AsyncClient(
        transport=httpx.MockTransport(answer), follow_redirects=follow_redirects
    )
    return EventPoster(http, key=KEY, allow_private=allow_private, resolver=resolver)


@pytest.mark.parametrize("address", PLAIN_INSIDE + EMBEDDED_INSIDE)
async def test_a_name_whose_dns_answers_an_inside_address_is_never_contacted(
    address: str,
) -> None:
    """DNS is asked at each delivery: a name that now resolves inside gets no request."""
    seen: list[httpx.Request] = []
    poster = _poster(seen, {"hooks.acme.example": [PUBLIC, address]})
    assert await poster.post("https://hooks.acme.example/otp", b"{}", 1) is False
    assert seen == []


@pytest.mark.parametrize("host", [*NUMERIC_HOSTS, *(f"[{address}]" for address in EMBEDDED_INSIDE)])
async def test_numeric_and_embedded_hosts_are_never_contacted(host: str) -> None:
    """Even with a resolver that would answer a public address for anything: a numeric
    spelling is refused as such, and an IP literal is judged as it stands, never resolved."""
    seen: list[httpx.Request] = []
    assert await _poster(seen, {}).post(f"https://{host}/otp", b"{}", 1) is False
    assert seen == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("follow_redirects", [False, True])
async def test_a_redirect_is_a_failed_delivery_and_is_not_followed(
    status: int, follow_redirects: bool
) -> None:
    """A receiver cannot bounce the service inside with a 3xx, whatever the client's setting."""
    seen: list[httpx.Request] = []
    poster = _poster(seen, {}, status=status, follow_redirects=follow_redirects)
    assert await poster.post("https://hooks.acme.example/otp", b"{}", 1) is False
    assert [str(request.url) for request in seen] == [f"https://{PUBLIC}/otp"]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.acme.example/otp\r\n",
        "https://bücher.example/otp",
        "http://hooks.acme.example:0/otp",
        "https://[::1/otp",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_a_stored_malformed_url_is_a_failed_delivery_not_an_exception(
    url: str, allow_private: bool
) -> None:
    """URLs stored before the syntax was enforced fail quietly instead of raising."""
    seen: list[httpx.Request] = []
    assert await _poster(seen, {}, allow_private=allow_private).post(url, b"{}", 1) is False
    assert seen == []


async def test_credentials_in_the_url_are_sent_as_basic_authentication() -> None:
    """Pinning the address keeps the URL's credentials; the Host header carries none."""
    seen: list[httpx.Request] = []
    url = "https://hook-user:s3cr%40t@hooks.acme.example:8443/otp?token=x"
    assert await _poster(seen, {}).post(url, b"{}", 1) is True
    [request] = seen
    assert request.url.host == PUBLIC
    assert request.headers["host"] == "hooks.acme.example:8443"
    expected = base64.b64encode(b"hook-user:s3cr@t").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
