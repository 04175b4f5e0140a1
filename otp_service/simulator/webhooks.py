"""Signed webhook delivery, as Telnyx does it, off the request path.

Every event is signed like Telnyx's: Ed25519 over ``<timestamp>|<raw body>``, the timestamp
(Unix seconds) in ``telnyx-timestamp`` and the base64 signature in
``telnyx-signature-ed25519``. A failed delivery (no answer, or not 2xx) is retried a few
times with a short backoff; each attempt carries its number in ``meta.attempt`` and is
signed afresh.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Coroutine
from typing import Any, Final

import httpx
import msgspec
from nacl.signing import SigningKey

_log = logging.getLogger(__name__)

ATTEMPTS: Final = 3
_BACKOFF_SECONDS: Final = 0.1
_HTTP_SUCCESS = range(200, 300)


def signature_headers(signing_key: SigningKey, body: bytes, timestamp: int) -> dict[str, str]:
    """Return the headers that sign ``body`` at ``timestamp``, exactly as Telnyx sets them."""
    signed = signing_key.sign(f"{timestamp}|".encode() + body).signature
    return {
        "telnyx-timestamp": str(timestamp),
        "telnyx-signature-ed25519": base64.b64encode(signed).decode(),
    }


class WebhookSender:
    """Posts signed events and keeps every background delivery task until it ends.

    The tasks are held so they are not garbage-collected mid-flight and so the app's
    shutdown can cancel and await them instead of leaving them to a closed loop.
    """

    def __init__(self, signing_key: SigningKey) -> None:
        self._signing_key = signing_key
        self._tasks: set[asyncio.Task[None]] = set()
        self.http: httpx.AsyncClient | None = None

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, tracked until it finishes."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel the deliveries still running and wait until they have stopped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def deliver(self, url: str, data: dict[str, Any]) -> bool:
        """Post one event until a 2xx answers it or the attempts run out; return which.

        Every event carries ``meta: {attempt, delivered_to}``: the spec lists it for delivery
        events only, but Telnyx's own examples of inbound events have it too.
        """
        if self.http is None:
            raise RuntimeError("the webhook client is opened by the app's lifespan")
        for attempt in range(1, ATTEMPTS + 1):
            envelope = {"data": data, "meta": {"attempt": attempt, "delivered_to": url}}
            body = msgspec.json.encode(envelope)
            headers = signature_headers(self._signing_key, body, int(time.time()))
            headers["content-type"] = "application/json"
            try:
                response = await self.http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                if response.status_code in _HTTP_SUCCESS:
                    return True
                outcome = f"HTTP {response.status_code}"
            _log.info("webhook %s to %s failed (%s)", data["event_type"], url, outcome)
            if attempt < ATTEMPTS:
                await asyncio.sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))
        return False
