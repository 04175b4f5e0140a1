"""``AsyncOtpClient``: the tenant API over an ``httpx.AsyncClient``.

The same methods as ``OtpClient``, awaited; each is documented there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import httpx

from otp_service.client import calls
from otp_service.client.models import CheckResult, OptOut, Stats, Verification

T = TypeVar("T")


class AsyncOtpClient:
    """``OtpClient`` for asyncio: ``async with``, or ``await aclose()``.

    ``http_client`` is an ``httpx.AsyncClient`` of your own (not closed by this client);
    ``transport`` an ``httpx.AsyncBaseTransport``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = calls.DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._endpoint = calls.Endpoint(base_url, api_key)
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections, unless the ``httpx.AsyncClient`` was given."""
        if self._owned:
            await self._http.aclose()

    async def _send(self, call: calls.Call[T]) -> T:
        request = self._endpoint.request(self._http, call)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise calls.network_error(request, exc) from exc
        return calls.answer(call, response)

    async def start(
        self,
        phone_number: str,
        *,
        locale: str | None = None,
        code_length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        rate_limit_keys: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Verification:
        """See ``OtpClient.start``."""
        return await self._send(
            calls.start(
                phone_number,
                locale=locale,
                code_length=code_length,
                metadata=metadata,
                rate_limit_keys=rate_limit_keys,
                idempotency_key=idempotency_key,
            )
        )

    async def check(
        self,
        verification_id: str,
        code: str,
        *,
        rate_limit_keys: Mapping[str, str] | None = None,
    ) -> CheckResult:
        """See ``OtpClient.check``."""
        return await self._send(calls.check(verification_id, code, rate_limit_keys=rate_limit_keys))

    async def check_phone_number(
        self,
        phone_number: str,
        code: str,
        *,
        rate_limit_keys: Mapping[str, str] | None = None,
    ) -> CheckResult:
        """See ``OtpClient.check_phone_number``."""
        return await self._send(
            calls.check_phone_number(phone_number, code, rate_limit_keys=rate_limit_keys)
        )

    async def get(self, verification_id: str) -> Verification:
        """See ``OtpClient.get``."""
        return await self._send(calls.get(verification_id))

    async def cancel(self, verification_id: str) -> Verification:
        """See ``OtpClient.cancel``."""
        return await self._send(calls.cancel(verification_id))

    async def opt_out(self, phone_number: str) -> OptOut:
        """See ``OtpClient.opt_out``."""
        return await self._send(calls.opt_out(phone_number))

    async def stats(self, from_: datetime | None = None, to: datetime | None = None) -> Stats:
        """See ``OtpClient.stats``."""
        return await self._send(calls.stats(from_, to))

    async def webhook_public_key(self) -> str:
        """See ``OtpClient.webhook_public_key``."""
        return (await self._send(calls.webhook_public_key())).public_key

    async def webhook_public_keys(self) -> list[str]:
        """See ``OtpClient.webhook_public_keys``."""
        return calls.accepted_keys(await self._send(calls.webhook_public_key()))
