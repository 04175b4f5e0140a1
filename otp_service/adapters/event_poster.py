"""Posting a signed tenant event, without letting a tenant aim the service at its network.

Events are signed the way Telnyx signs its webhooks: Ed25519 over ``<timestamp>|<raw
body>``, in ``otp-signature-ed25519`` (base64) and ``otp-timestamp`` (Unix seconds).
Unless private webhooks are allowed, the host is resolved at each attempt, every address
must be public, and the request goes to the address that was checked (the name still
drives TLS: SNI and certificate checks), so DNS cannot switch to an inside address between
the check and the connection. Redirects are not followed.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
from nacl.signing import SigningKey

from otp_service.adapters.dns import resolve
from otp_service.core.urls import event_url_problem, parse_event_url

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
        """Post one event; ``True`` when the receiver answered 2xx."""
        target = url
        headers: dict[str, str] = {}
        extensions: dict[str, str] = {}
        if not self._allow_private:
            parsed = parse_event_url(url)
            addresses = await self._resolve(parsed[1]) if parsed else []
            problem = event_url_problem(url, addresses, allow_private=False)
            if problem is not None or parsed is None:
                log.warning("event not sent: the URL %s", problem)
                return False
            target, headers, extensions = _pinned(url, addresses[0], parsed[1])
        headers |= {"content-type": "application/json", "user-agent": "otp-service"}
        headers |= signature_headers(self._key, body, timestamp)
        try:
            response = await self._http.post(
                target, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            log.info("event delivery failed: %s", type(exc).__name__)
            return False
        return response.is_success


def _pinned(url: str, address: str, host: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Address the request to a checked IP, keeping the name for Host, SNI and the cert."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return pinned, {"host": parts.netloc.rsplit("@", 1)[-1]}, {"sni_hostname": host}
