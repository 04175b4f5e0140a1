"""The routes of the Twilio Verify v2-compatible surface, each over a ``/v1`` use case."""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import Controller, MediaType, Request, Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_429_TOO_MANY_REQUESTS

from otp_service.api.twilio.auth import TwilioCaller, provide_twilio_caller
from otp_service.api.twilio.errors import (
    EXCEPTION_HANDLERS,
    MAX_CHECK_ATTEMPTS,
    TwilioError,
    invalid_parameter,
    not_found,
)
from otp_service.api.twilio.forms import (
    CHECK_PARAMETERS,
    START_PARAMETERS,
    UPDATE_PARAMETERS,
    read_form,
    required,
    start_request,
)
from otp_service.api.twilio.resources import check_resource, verification_resource
from otp_service.core import twilio_ids
from otp_service.core.model import Verification, VerificationStatus
from otp_service.errors import VerificationNotPending
from otp_service.runtime import Services
from otp_service.usecases.verifications import CheckResult

MOUNT: Final = "/twilio"

_GONE: Final = frozenset(
    {VerificationStatus.APPROVED, VerificationStatus.CANCELED, VerificationStatus.EXPIRED}
)
"""Ends after which Twilio answers 20404: such a verification is no longer there."""


def _json(resource: msgspec.Struct, status: int) -> Response[bytes]:
    """A resource as encoded JSON.

    The handlers answer bytes, not structs, because Litestar adds the schema of every
    struct a handler returns to the OpenAPI document, even for routes left out of it;
    the document must not change with ``OTP_TWILIO_API``.
    """
    return Response(msgspec.json.encode(resource), status_code=status, media_type=MediaType.JSON)


def _render(
    request: Request[Any, Any, Any], caller: TwilioCaller, verification: Verification, status: int
) -> Response[bytes]:
    resource = verification_resource(
        verification,
        account_sid=caller.account_sid,
        service_sid=caller.service_sid,
        base_url=str(request.base_url).rstrip("/") + MOUNT,
    )
    return _json(resource, status)


def _verification_id(sid: str, request: Request[Any, Any, Any]) -> str:
    """Our id of a ``VE`` SID; anything else names no verification (20404)."""
    ident = twilio_ids.id_of(twilio_ids.VERIFICATION, sid)
    if ident is None:
        raise not_found(request.url.path.removeprefix(MOUNT))
    return ident


class TwilioVerifyController(Controller):
    """``/twilio/v2/Services/{ServiceSid}``: Verifications and VerificationCheck."""

    path = "/v2/Services/{service_sid:str}"
    dependencies = {"caller": Provide(provide_twilio_caller)}  # noqa: RUF012

    @post("/Verifications", status_code=HTTP_201_CREATED)
    async def create(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[TwilioCaller],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        """Start a verification (or re-send the number's pending one), as ``/v1`` does."""
        start = start_request(await read_form(request, START_PARAMETERS))
        verification, _ = await services.verifications.start(caller.tenant, start)
        return _render(request, caller, verification, HTTP_201_CREATED)

    @post("/VerificationCheck", status_code=HTTP_200_OK)
    async def check(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[TwilioCaller],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        """Check a code by ``VerificationSid`` or by ``To``; a wrong code is 200, ``valid`` false.

        A verification whose attempts are spent answers 60202 (429), as Twilio does; one
        that ended otherwise answers 20404.
        """
        form = await read_form(request, CHECK_PARAMETERS)
        code = required(form, "Code")
        result = await self._check(caller, services, form, code)
        verification = await services.verifications.get(caller.tenant, result.id)
        resource = check_resource(
            verification,
            status=result.status,
            valid=result.valid,
            account_sid=caller.account_sid,
            service_sid=caller.service_sid,
        )
        return _json(resource, HTTP_200_OK)

    @staticmethod
    async def _check(
        caller: TwilioCaller, services: Services, form: dict[str, str], code: str
    ) -> CheckResult:
        try:
            if "VerificationSid" in form:
                ident = twilio_ids.id_of(twilio_ids.VERIFICATION, form["VerificationSid"])
                if ident is None:
                    raise invalid_parameter("VerificationSid", "not a verification SID (VE…)")
                return await services.verifications.check(caller.tenant, ident, code)
            if not form.get("To"):
                raise invalid_parameter("To", "give To or VerificationSid")
            return await services.verifications.check_by_phone(caller.tenant, form["To"], code)
        except VerificationNotPending as exc:
            if exc.status == VerificationStatus.MAX_ATTEMPTS_REACHED:
                raise TwilioError(
                    HTTP_429_TOO_MANY_REQUESTS, MAX_CHECK_ATTEMPTS, "Max check attempts reached"
                ) from exc
            raise

    @get("/Verifications/{sid:str}")
    async def fetch(
        self,
        sid: FromPath[str],
        request: Request[Any, Any, Any],
        caller: NamedDependency[TwilioCaller],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        """Read a verification; approved, canceled and expired ones are 20404, as on Twilio."""
        verification = await services.verifications.get(
            caller.tenant, _verification_id(sid, request)
        )
        if verification.status in _GONE:
            raise not_found(request.url.path.removeprefix(MOUNT))
        return _render(request, caller, verification, HTTP_200_OK)

    @post("/Verifications/{sid:str}", status_code=HTTP_200_OK)
    async def update(
        self,
        sid: FromPath[str],
        request: Request[Any, Any, Any],
        caller: NamedDependency[TwilioCaller],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        """``Status=canceled`` cancels; ``Status=approved`` approves without a code.

        Only a pending verification changes; any other is 20404.
        """
        form = await read_form(request, UPDATE_PARAMETERS)
        status = required(form, "Status")
        ident = _verification_id(sid, request)
        if status == VerificationStatus.CANCELED:
            verification = await services.verifications.cancel(caller.tenant, ident)
        elif status == VerificationStatus.APPROVED:
            verification = await services.verifications.approve(caller.tenant, ident)
        else:
            raise invalid_parameter("Status", "must be canceled or approved")
        return _render(request, caller, verification, HTTP_200_OK)


def twilio_router() -> Router:
    """The ``/twilio`` surface, its errors in Twilio's body, outside the OpenAPI document."""
    return Router(
        path=MOUNT,
        route_handlers=[TwilioVerifyController],
        include_in_schema=False,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
    )
