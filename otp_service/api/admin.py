"""Admin API: tenants, their API keys and opt-out lists, behind ``OTP_ADMIN_TOKEN``."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Final

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from otp_service.adapters.redis_optouts import profile_scope
from otp_service.api.dependencies import admin_guard
from otp_service.api.schemas import (
    ApiKeyCreatedOut,
    ApiKeyOut,
    BlockListOut,
    CreateTenantBody,
    OptOutListOut,
    OptOutOut,
    PatchTenantBody,
    TenantListOut,
    TenantOut,
    TwilioSidsOut,
    tenant_out,
)
from otp_service.core import twilio_ids
from otp_service.core.views import block_out, rfc3339
from otp_service.errors import InvalidInput
from otp_service.problems import problem_responses
from otp_service.runtime import Services
from otp_service.usecases.delivery import opt_out_scope

_CURSOR_NUMBER: Final = re.compile(r"\+[0-9]{1,15}", re.ASCII)
_CURSOR_TENANT: Final = re.compile(r"[0-9]{15}:ten_[a-z0-9]{1,40}", re.ASCII)


class AdminController(Controller):
    """``/admin/tenants`` and ``/admin/opt-outs``."""

    path = "/admin"
    tags = ["admin"]  # noqa: RUF012  (Litestar's declared class attribute)
    guards = [admin_guard]  # noqa: RUF012
    security = [{"AdminToken": []}]  # noqa: RUF012

    @post(
        "/tenants",
        status_code=HTTP_201_CREATED,
        summary="Create a tenant",
        responses=problem_responses(400, 401, 413, 415, 422),
    )
    async def create_tenant(
        self, data: JSONBody[CreateTenantBody], services: NamedDependency[Services]
    ) -> TenantOut:
        """Create a tenant with its settings (defaults for what is left out)."""
        return tenant_out(await services.tenants.create(data.name, data.settings))

    @get("/tenants", summary="List tenants", responses=problem_responses(401, 422))
    async def list_tenants(
        self,
        services: NamedDependency[Services],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=128, description="`next_cursor` of the previous page"),
        ] = None,
    ) -> TenantListOut:
        """List tenants, oldest first, `limit` at a time, each as `GET /admin/tenants/{id}` has it.

        A tenant created while paging appears on the last page; none is listed twice.
        """
        page, last = await services.tenants.list_tenants(_tenant_position(cursor), limit)
        return TenantListOut(
            data=[tenant_out(tenant) for tenant in page],
            next_cursor=None if last is None else _cursor_of(last),
        )

    @get("/tenants/{tenant_id:str}", summary="Read a tenant", responses=problem_responses(401, 404))
    async def read_tenant(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> TenantOut:
        """Return a tenant and its settings."""
        return tenant_out(await services.tenants.get(tenant_id))

    @patch(
        "/tenants/{tenant_id:str}",
        summary="Change a tenant's settings",
        responses=problem_responses(400, 401, 404, 413, 415, 422),
    )
    async def patch_tenant(
        self,
        tenant_id: FromPath[str],
        data: JSONBody[PatchTenantBody],
        services: NamedDependency[Services],
    ) -> TenantOut:
        """Change the given settings fields; the others keep their values.

        The settings that result must satisfy the rules of ``TenantSettings`` as a whole,
        else 422 and nothing changes.
        """
        tenant = await services.tenants.update(tenant_id, name=data.name, changes=data.settings)
        return tenant_out(tenant)

    @post(
        "/tenants/{tenant_id:str}/api-keys",
        status_code=HTTP_201_CREATED,
        summary="Issue an API key",
        responses=problem_responses(401, 404),
    )
    async def create_key(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> ApiKeyCreatedOut:
        """Issue a key; ``key`` is shown in this response only."""
        record, key = await services.tenants.create_key(tenant_id)
        return ApiKeyCreatedOut(
            id=record.id,
            key=key,
            prefix=record.prefix,
            created_at=rfc3339(record.created_at),
            twilio_sid=twilio_ids.sid_of(twilio_ids.API_KEY, record.id),
        )

    @get(
        "/tenants/{tenant_id:str}/api-keys",
        summary="List API keys",
        responses=problem_responses(401, 404),
    )
    async def list_keys(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> list[ApiKeyOut]:
        """List the tenant's keys without secrets."""
        return [
            ApiKeyOut(
                id=k.id,
                prefix=k.prefix,
                created_at=rfc3339(k.created_at),
                twilio_sid=twilio_ids.sid_of(twilio_ids.API_KEY, k.id),
            )
            for k in await services.tenants.list_keys(tenant_id)
        ]

    @delete(
        "/tenants/{tenant_id:str}/api-keys/{key_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke an API key",
        responses=problem_responses(401, 404),
    )
    async def revoke_key(
        self, tenant_id: FromPath[str], key_id: FromPath[str], services: NamedDependency[Services]
    ) -> None:
        """Revoke a key; it stops working at once."""
        await services.tenants.revoke_key(tenant_id, key_id)

    @get(
        "/tenants/{tenant_id:str}/twilio",
        summary="Read a tenant's Twilio SIDs",
        responses=problem_responses(401, 404),
    )
    async def read_twilio_sids(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> TwilioSidsOut:
        """The account and service SIDs that name the tenant on the Twilio-compatible API."""
        tenant = await services.tenants.get(tenant_id)
        return TwilioSidsOut(
            account_sid=twilio_ids.sid_of(twilio_ids.ACCOUNT, tenant.id),
            service_sid=twilio_ids.sid_of(twilio_ids.SERVICE, tenant.id),
        )

    @get(
        "/tenants/{tenant_id:str}/blocks",
        summary="List blocks in force",
        responses=problem_responses(401, 404),
    )
    async def list_blocks(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> BlockListOut:
        """List the tenant's blocks: ranges the fraud guard blocked, countries out of budget.

        Blocks of `mode` `monitor` refuse nothing; they show what `block` would have done.
        """
        await services.tenants.get(tenant_id)
        return BlockListOut(data=[block_out(b) for b in await services.fraud.in_force(tenant_id)])

    @delete(
        "/tenants/{tenant_id:str}/blocks/{block_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Lift a block",
        responses=problem_responses(401, 404),
    )
    async def lift_block(
        self, tenant_id: FromPath[str], block_id: FromPath[str], services: NamedDependency[Services]
    ) -> None:
        """Lift a block: the next start it refused goes through (404 `block_not_found`).

        A range's evidence goes with its block, so the range is judged afresh; a country's
        daily budget is refilled.
        """
        await services.tenants.get(tenant_id)
        await services.fraud.lift(tenant_id, block_id)

    @get(
        "/opt-outs",
        summary="List a scope's opt-outs",
        responses=problem_responses(401, 404, 422),
    )
    async def list_opt_outs(
        self,
        services: NamedDependency[Services],
        messaging_profile_id: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=64,
                description="List the opt-outs of this messaging profile",
            ),
        ] = None,
        tenant_id: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=64,
                description="List the opt-outs this tenant honours (its profile's, if it has one)",
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=64, description="`next_cursor` of the previous page"),
        ] = None,
    ) -> OptOutListOut:
        """List opt-outs by phone number, one scope at a time.

        Give exactly one of ``messaging_profile_id`` and ``tenant_id`` (neither or both: 422).
        """
        if messaging_profile_id is not None and tenant_id is None:
            scope = profile_scope(messaging_profile_id)
        elif tenant_id is not None and messaging_profile_id is None:
            scope = opt_out_scope(await services.tenants.get(tenant_id))
        else:
            message = "give exactly one of messaging_profile_id and tenant_id"
            raise InvalidInput(
                message,
                [
                    {"field": "messaging_profile_id", "message": message},
                    {"field": "tenant_id", "message": message},
                ],
            )
        page, last = await services.optouts.list(scope, _number_of(cursor), limit)
        return OptOutListOut(
            data=[
                OptOutOut(
                    phone_number=e164,
                    opted_out=True,
                    since=rfc3339(opt_out.since),
                    source=opt_out.source,
                )
                for e164, opt_out in page
            ],
            next_cursor=None if last is None else _cursor_of(last),
        )


def _cursor_of(position: str) -> str:
    """Wrap the last position of a page (a number, a tenant's index entry) as an opaque cursor."""
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def _position_of(cursor: str | None, valid: re.Pattern[str]) -> str | None:
    """Unwrap a cursor made by ``_cursor_of``, whose position must match ``valid``.

    Raises:
        InvalidInput: anything else (the position then also cannot smuggle ``ZRANGEBYLEX``
            syntax into the query).
    """
    if cursor is None:
        return None
    try:
        position = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError:  # not base64, or not ASCII/UTF-8
        position = ""
    if not valid.fullmatch(position):
        message = "not a cursor this API gave out"
        raise InvalidInput(f"cursor: {message}", [{"field": "cursor", "message": message}])
    return position


def _number_of(cursor: str | None) -> str | None:
    """The phone number an opt-out list's cursor stands for."""
    return _position_of(cursor, _CURSOR_NUMBER)


def _tenant_position(cursor: str | None) -> str | None:
    """The tenant index entry a tenant list's cursor stands for."""
    return _position_of(cursor, _CURSOR_TENANT)
