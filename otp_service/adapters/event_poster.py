"""Posting a signed tenant event, without letting a tenant aim the service at its network.

Events are signed the way Telnyx signs its webhooks: Ed25519 over ``<timestamp>|<raw
body>``, in ``otp-signature-ed25519`` (base64) and ``otp-timestamp`` (Unix seconds).
A URL that breaks the syntax rules of ``core.urls`` (one stored before they were enforced)
is a failed delivery, never an exception out of ``post``. Unless private webhooks are
allowed, the host is resolved at each attempt, every address must be public, and the
request goes to the address that was checked (the name still drives TLS: SNI and
certificate checks), so DNS cannot switch to an inside address between the check and the
connection. Redirects are not followed: a 3xx is a failed delivery, whatever the client's
own setting.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
from nacl.signing import SigningKey

from otp_service.adapters.dns import resolve
from otp_service.core.urls import InvalidEventUrl, event_url_problem, parse_event_url

log = logging.getLogger("otp_service.usecases.events")


def signature_headers(key: SigningKey, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that sign ``body`` at ``timestamp``."""
    stamp = str(timestamp)
    signature = key.sign(stamp.encode() + b"|" + body).signature
    return {"otp-timestamp": stamp, "otp-signature-ed25519": base64.b64encode(signature).decode()}


class EventPoster:
    """Posts event bodies to tenants' URLs over an injected ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        key: SigningKey,
        allow_private: bool,
        resolver: Callable[[str], Awaitable[list[str]]] = resolve,
    ) -> None:
        self._http = http
        self._key = key
        self._allow_private = allow_private
        self._resolve = resolver

    async def post(self, url: str, body: bytes, timestamp: int) -> bool:
        """Post one event; ``True`` when the receiver answered 2xx (a 3xx is a failure)."""
        try:
            parsed = parse_event_url(url)
        except InvalidEventUrl as exc:
            log.warning("event not sent", extra={"fields": {"reason": f"the URL {exc}"}})
            return False
        target = url
        headers: dict[str, str] = {}
        extensions: dict[str, str] = {}
        if not self._allow_private:
            addresses = [parsed.host] if parsed.literal else await self._resolve(parsed.host)
            problem = event_url_problem(url, addresses, allow_private=False)
            if problem is not None:
                log.warning("event not sent", extra={"fields": {"reason": f"the URL {problem}"}})
                return False
            target, headers, extensions = _pinned(url, addresses[0], parsed.host)
        headers |= {"content-type": "application/json", "user-agent": "otp-service"}
        headers |= signature_headers(self._key, body, timestamp)
        try:
            response = await self._http.post(
                target,
                content=body,
                headers=headers,
                extensions=extensions,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            failed = {"origin": parsed.origin, "error": type(exc).__name__}
            log.info("event delivery failed", extra={"fields": failed})
            return False
        posted = {"origin": parsed.origin, "status": response.status_code}
        log.info("event posted", extra={"fields": posted})
        return response.is_success


def _pinned(url: str, address: str, host: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Address the request to a checked IP, keeping the name for Host, SNI and the cert.

    Credentials in the URL stay in it, so httpx still sends them as basic authentication.
    """
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{userinfo}{at}{literal}:{parts.port}" if parts.port else f"{userinfo}{at}{literal}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return pinned, {"host": hostport}, {"sni_hostname": host}
