"""``OtpClient``: the tenant API over a blocking ``httpx.Client``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar

import httpx

from otp_service.client import calls
from otp_service.client.models import CheckResult, OptOut, Stats, Verification

T = TypeVar("T")


class OtpClient:
    """A tenant's client of otp-service; use it as a context manager, or ``close()`` it.

    ``base_url`` is where the service answers (e.g. ``http://127.0.0.1:8000``), ``api_key``
    a key of the tenant. ``timeout`` and ``transport`` configure the ``httpx.Client`` it
    makes; give ``http_client`` instead to share one of your own (its headers, proxies and
    timeout apply; the client does not close it). Every method raises a subclass of
    ``OtpError`` when the service answers an error or cannot be reached.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = calls.DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._endpoint = calls.Endpoint(base_url, api_key)
        self._owned = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections, unless the ``httpx.Client`` was given."""
        if self._owned:
            self._http.close()

    def _send(self, call: calls.Call[T]) -> T:
        request = self._endpoint.request(self._http, call)
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise calls.network_error(request, exc) from exc
        return calls.answer(call, response)

    def start(
        self,
        phone_number: str,
        *,
        locale: str | None = None,
        code_length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        rate_limit_keys: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Verification:
        """Send a code by SMS to ``phone_number`` (E.164), or re-send its pending one.

        ``locale`` picks the SMS's language (e.g. ``fr``, ``pt-BR``), ``code_length`` its
        digits (else the tenant's), ``metadata`` up to 10 string pairs returned as given.
        ``rate_limit_keys`` say who is asking (e.g. ``{"ip": ..., "user_id": ...}``), so
        limits stop an abusive asker without locking the number's owner out.
        ``idempotency_key`` makes the call repeat-safe: a repeat returns the first answer
        and sends nothing.
        """
        return self._send(
            calls.start(
                phone_number,
                locale=locale,
                code_length=code_length,
                metadata=metadata,
                rate_limit_keys=rate_limit_keys,
                idempotency_key=idempotency_key,
            )
        )

    def check(
        self,
        verification_id: str,
        code: str,
        *,
        rate_limit_keys: Mapping[str, str] | None = None,
    ) -> CheckResult:
        """Check what the user typed; a wrong code is ``valid=False``, not an exception."""
        return self._send(calls.check(verification_id, code, rate_limit_keys=rate_limit_keys))

    def check_phone_number(
        self,
        phone_number: str,
        code: str,
        *,
        rate_limit_keys: Mapping[str, str] | None = None,
    ) -> CheckResult:
        """Check a code against the pending verification of ``phone_number`` (404: none)."""
        return self._send(
            calls.check_phone_number(phone_number, code, rate_limit_keys=rate_limit_keys)
        )

    def get(self, verification_id: str) -> Verification:
        """Read a verification (readable for 24 h after it ended)."""
        return self._send(calls.get(verification_id))

    def cancel(self, verification_id: str) -> Verification:
        """Cancel a pending verification: its codes stop working."""
        return self._send(calls.cancel(verification_id))

    def opt_out(self, phone_number: str) -> OptOut:
        """Whether ``phone_number`` opted out of the tenant's messaging profile."""
        return self._send(calls.opt_out(phone_number))

    def stats(self, from_: datetime | None = None, to: datetime | None = None) -> Stats:
        """Conversion counts over ``[from_, to)`` (aware datetimes; default: the last 24 h)."""
        return self._send(calls.stats(from_, to))

    def webhook_public_key(self) -> str:
        """The base64 Ed25519 key that signs tenant events (for ``verify_event``)."""
        return self._send(calls.webhook_public_key()).public_key

    def webhook_public_keys(self) -> list[str]:
        """Every base64 key to accept events from, the signing one first (for ``verify_event``).

        While the service rotates its signing key this includes the former key.
        """
        return calls.accepted_keys(self._send(calls.webhook_public_key()))
