"""``Idempotency-Key`` on starts: a repeat gets the first answer and sends nothing.

The first request claims the key in Redis (one script), runs, and stores its response for
24 h. A concurrent repeat finds the claim and waits for that response rather than sending a
second SMS.

Only a final answer is stored, one that only a change of the request (or of the tenant's
settings) could change:

- 2xx: a verification exists and an SMS went; a repeat must not send another.
- 403 ``destination_not_allowed`` and 422 (invalid or unsupported number, code length):
  the request itself is refused, and stays refused however often it is sent.

An answer that time alone may change is not stored; the claim is released, so the tenant's
retry with the same key really retries:

- 429 ``rate_limited``: its own ``Retry-After`` says when the limit clears (replaying it for
  24 h contradicted that).
- 409: ``recipient_opted_out`` lasts until the recipient replies START (and
  ``idempotency_in_flight`` is never the action's own answer).
- 5xx: 503 (Telnyx or Redis unavailable) passes; 502 ``provider_error`` means Telnyx
  refused every sender, so nothing was sent and a retry may safely try again (the failed
  verification stays readable by the id in the first answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec

from otp_service.adapters.redis_verifications import VerificationStore
from otp_service.errors import IdempotencyConflict, IdempotencyInFlight, InvalidInput

CLAIM_MS: Final = 15_000
"""How long an in-flight claim holds: longer than any start can take (API.md: 10 s)."""

_POLL_SECONDS: Final = 0.05
_WAIT_SECONDS: Final = 9.0
_MAX_KEY_LENGTH: Final = 255
_FINAL_REFUSALS: Final = frozenset({403, 422})
"""Error statuses stored for replay; every other non-2xx is released (see the docstring)."""


def is_final(status: int) -> bool:
    """Tell whether a start's answer is stored for replay: only time-independent ones are."""
    return 200 <= status < 300 or status in _FINAL_REFUSALS  # noqa: PLR2004


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
        keep = is_final(response.status)
        await self._store.idempotency_finish(
            tenant_id, key, fingerprint, msgspec.json.encode(response) if keep else None
        )
        return response
