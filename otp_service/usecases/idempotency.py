"""``Idempotency-Key`` on starts: a repeat gets the first answer and sends nothing.

The first request claims the key in Redis (one script), runs, and stores its response for
24 h. A concurrent repeat finds the claim and waits for that response rather than sending a
second SMS. A response that says "try again" (503) is not stored: the claim is released, so
the tenant's retry really retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE

from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.errors import IdempotencyConflict, IdempotencyInFlight, InvalidInput

CLAIM_MS: Final = 15_000
"""How long an in-flight claim holds: longer than any start can take (API.md: 10 s)."""

_POLL_SECONDS: Final = 0.05
_WAIT_SECONDS: Final = 9.0
_MAX_KEY_LENGTH: Final = 255


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A response as it is replayed: status, JSON body, media type and headers."""

    status: int
    body: bytes
    media_type: str
    headers: dict[str, str]


class Idempotency:
    """Runs a start at most once per (tenant, key)."""

    def __init__(self, store: VerificationStore) -> None:
        self._store = store
        self._decoder = msgspec.json.Decoder(StoredResponse)

    async def run(
        self,
        tenant_id: str,
        key: str,
        fingerprint: str,
        action: Callable[[], Awaitable[StoredResponse]],
    ) -> StoredResponse:
        """Run ``action`` once for ``key``, or replay what the first run answered.

        Raises:
            InvalidInput: a key that is empty, too long or not printable ASCII.
            IdempotencyConflict: the key was used with another body.
            IdempotencyInFlight: the first request is still running after the wait.
        """
        if not key or len(key) > _MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
            raise InvalidInput(
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
                [{"field": "Idempotency-Key", "message": "1 to 255 printable ASCII characters"}],
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _WAIT_SECONDS
        while True:
            state, stored = await self._store.idempotency_begin(
                tenant_id, key, fingerprint, CLAIM_MS
            )
            if state == "conflict":
                raise IdempotencyConflict("this Idempotency-Key was used with another request body")
            if state == "done" and stored is not None:
                return self._decoder.decode(stored)
            if state == "claimed":
                break
            if loop.time() >= deadline:
                raise IdempotencyInFlight("a request with this Idempotency-Key is still running")
            await asyncio.sleep(_POLL_SECONDS)
        try:
            response = await action()
        except BaseException:
            await self._store.idempotency_finish(tenant_id, key, fingerprint, None)
            raise
        keep = response.status != HTTP_503_SERVICE_UNAVAILABLE
        await self._store.idempotency_finish(
            tenant_id, key, fingerprint, msgspec.json.encode(response) if keep else None
        )
        return response
