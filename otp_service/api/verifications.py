"""Tenant API: verifications, opt-out lookups and the tenant-event public key."""

from __future__ import annotations

import base64
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from otp_service.api.dependencies import fingerprint, provide_tenant
from otp_service.api.schemas import (
    E164_PATTERN,
    CheckBody,
    CheckByPhoneBody,
    CheckOut,
    OptOutOut,
    PublicKeyEntryOut,
    PublicKeyOut,
    StartVerificationBody,
)
from otp_service.core.derive import public_key_id
from otp_service.core.model import Tenant
from otp_service.core.views import VerificationOut, rfc3339, verification_out
from otp_service.errors import OtpError
from otp_service.problems import PROBLEM_JSON, problem_of, problem_responses
from otp_service.runtime import Services
from otp_service.usecases.idempotency import StoredResponse
from otp_service.usecases.verifications import CheckResult, StartRequest

_SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}]
_STARTED = {
    HTTP_200_OK: ResponseSpec(
        data_container=VerificationOut,
        description="A pending verification for this number existed: it was re-sent",
        generate_examples=False,
    )
}


def _check_out(result: CheckResult) -> CheckOut:
    return CheckOut(
        id=result.id,
        status=result.status.value,
        valid=result.valid,
        check_attempts_remaining=result.check_attempts_remaining,
    )


class VerificationController(Controller):
    """``/v1/verifications``: start (or resend), check, read and cancel."""

    path = "/v1/verifications"
    tags = ["verifications"]  # noqa: RUF012  (Litestar's declared class attribute)
    security = _SECURITY
    dependencies = {"tenant": Provide(provide_tenant)}  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Start a verification (or re-send the pending one)",
        responses=_STARTED | problem_responses(400, 401, 403, 409, 413, 415, 422, 429, 502, 503),
    )
    async def start(
        self,
        data: JSONBody[StartVerificationBody],
        tenant: NamedDependency[Tenant],
        services: NamedDependency[Services],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                required=False,
                description="Repeat-safe key: a repeat with the same body replays the answer",
            ),
        ] = None,
    ) -> Response[VerificationOut]:
        """Send a code by SMS; 201 for a new verification, 200 for a resend."""
        request = StartRequest(
            phone_number=data.phone_number,
            locale=data.locale,
            code_length=data.code_length,
            metadata=dict(data.metadata),
            rate_limit_keys=dict(data.rate_limit_keys),
        )

        async def run() -> StoredResponse:
            try:
                verification, created = await services.verifications.start(tenant, request)
            except OtpError as exc:
                problem, headers = problem_of(exc)
                return StoredResponse(
                    status=problem.status,
                    body=msgspec.json.encode(problem),
                    media_type=PROBLEM_JSON,
                    headers=headers,
                )
            return StoredResponse(
                status=HTTP_201_CREATED if created else HTTP_200_OK,
                body=msgspec.json.encode(verification_out(verification)),
                media_type="application/json",
                headers={},
            )

        if idempotency_key is None:
            verification, created = await services.verifications.start(tenant, request)
            return Response(
                verification_out(verification),
                status_code=HTTP_201_CREATED if created else HTTP_200_OK,
            )
        stored = await services.idempotency.run(tenant.id, idempotency_key, fingerprint(data), run)
        return Response(
            stored.body,  # type: ignore[arg-type]  # replayed bytes, already JSON
            status_code=stored.status,
            media_type=stored.media_type,
            headers=stored.headers,
        )

    @post(
        "/{verification_id:str}/check",
        status_code=HTTP_200_OK,
        summary="Check a code",
        responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429),
    )
    async def check(
        self,
        verification_id: FromPath[str],
        data: JSONBody[CheckBody],
        tenant: NamedDependency[Tenant],
        services: NamedDependency[Services],
    ) -> CheckOut:
        """Check what the user typed; a wrong code answers 200 with ``valid: false``."""
        result = await services.verifications.check(
            tenant, verification_id, data.code, dict(data.rate_limit_keys)
        )
        return _check_out(result)

    @post(
        "/check",
        status_code=HTTP_200_OK,
        summary="Check a code against the pending verification of a number",
        responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429),
    )
    async def check_by_phone(
        self,
        data: JSONBody[CheckByPhoneBody],
        tenant: NamedDependency[Tenant],
        services: NamedDependency[Services],
    ) -> CheckOut:
        """Check a code for the tenant's pending verification of ``phone_number``."""
        result = await services.verifications.check_by_phone(
            tenant, data.phone_number, data.code, dict(data.rate_limit_keys)
        )
        return _check_out(result)

    @get(
        "/{verification_id:str}",
        summary="Read a verification",
        responses=problem_responses(401, 404),
    )
    async def read(
        self,
        verification_id: FromPath[str],
        tenant: NamedDependency[Tenant],
        services: NamedDependency[Services],
    ) -> VerificationOut:
        """Return the verification, readable for 24 h after it ended."""
        return verification_out(await services.verifications.get(tenant, verification_id))

    @post(
        "/{verification_id:str}/cancel",
        status_code=HTTP_200_OK,
        summary="Cancel a pending verification",
        responses=problem_responses(401, 404, 409),
    )
    async def cancel(
        self,
        verification_id: FromPath[str],
        tenant: NamedDependency[Tenant],
        services: NamedDependency[Services],
    ) -> VerificationOut:
        """Cancel; later checks answer 409."""
        return verification_out(await services.verifications.cancel(tenant, verification_id))


class OptOutController(Controller):
    """``/v1/opt-outs``: whether a recipient opted out of the tenant's messaging profile."""

    path = "/v1/opt-outs"
    tags = ["opt-outs"]  # noqa: RUF012
    security = _SECURITY
    dependencies = {"tenant": Provide(provide_tenant)}  # noqa: RUF012

    @get(
        "/{phone_number:str}",
        summary="Opt-out status of a number",
        responses=problem_responses(401, 422),
    )
    async def read(
        self,
        phone_number: Annotated[
            str,
            PathParameter(
                description="E.164, e.g. `+447400123456`; anything but a valid number (or "
                "one of the tenant's `sandbox_numbers`) is 422 `invalid_phone_number`",
                # Documented only, like the body fields: the service's own check answers.
                schema_extra={"pattern": E164_PATTERN},
            ),
        ],
        tenant: NamedDependency[Tenant],
        services: NamedDependency[Services],
    ) -> OptOutOut:
        """Tell whether the number opted out (STOP, carrier 40300 or an import)."""
        e164, opt_out = await services.verifications.opt_out(tenant, phone_number)
        return OptOutOut(
            phone_number=e164,
            opted_out=opt_out is not None,
            since=rfc3339(opt_out.since) if opt_out else None,
            source=opt_out.source if opt_out else None,
        )


@get(
    "/v1/webhook-public-key",
    tags=["events"],
    summary="Key that verifies tenant events",
    security=_SECURITY,
    dependencies={"tenant": Provide(provide_tenant)},
    responses=problem_responses(401),
)
async def webhook_public_key(
    tenant: NamedDependency[Tenant],  # noqa: ARG001  (resolving it authenticates the caller)
    services: NamedDependency[Services],
) -> PublicKeyOut:
    """The base64 Ed25519 public key over which tenant events are signed.

    ``keys`` lists the keys to accept, the current one first, then, while the signing key
    is rotated, the former one.
    """
    current = bytes(services.event_signing_key.verify_key)
    previous = services.previous_event_public_key
    keys = [
        PublicKeyEntryOut(key_id=public_key_id(key), public_key=base64.b64encode(key).decode())
        for key in (current, *([previous] if previous else []))
    ]
    return PublicKeyOut(public_key=keys[0].public_key, key_id=keys[0].key_id, keys=keys)
