"""Admin API: tenants and their API keys, behind ``OTP_ADMIN_TOKEN``."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from otp_service.api.dependencies import admin_guard
from otp_service.api.schemas import (
    ApiKeyCreatedOut,
    ApiKeyOut,
    CreateTenantBody,
    PatchTenantBody,
    TenantOut,
    rfc3339,
    tenant_out,
)
from otp_service.problems import problem_responses
from otp_service.runtime import Services


class AdminController(Controller):
    """``/admin/tenants``."""

    path = "/admin/tenants"
    tags = ["admin"]  # noqa: RUF012  (Litestar's declared class attribute)
    guards = [admin_guard]  # noqa: RUF012
    security = [{"AdminToken": []}]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a tenant",
        responses=problem_responses(400, 401, 413, 422),
    )
    async def create_tenant(
        self, data: JSONBody[CreateTenantBody], services: NamedDependency[Services]
    ) -> TenantOut:
        """Create a tenant with its settings (defaults for what is left out)."""
        return tenant_out(await services.tenants.create(data.name, data.settings))

    @get("/{tenant_id:str}", summary="Read a tenant", responses=problem_responses(401, 404))
    async def read_tenant(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> TenantOut:
        """Return a tenant and its settings."""
        return tenant_out(await services.tenants.get(tenant_id))

    @patch(
        "/{tenant_id:str}",
        summary="Change a tenant's settings",
        responses=problem_responses(400, 401, 404, 413, 422),
    )
    async def patch_tenant(
        self,
        tenant_id: FromPath[str],
        data: JSONBody[PatchTenantBody],
        services: NamedDependency[Services],
    ) -> TenantOut:
        """Change the given settings fields; the others keep their values."""
        tenant = await services.tenants.update(tenant_id, name=data.name, changes=data.settings)
        return tenant_out(tenant)

    @post(
        "/{tenant_id:str}/api-keys",
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
            id=record.id, key=key, prefix=record.prefix, created_at=rfc3339(record.created_at)
        )

    @get(
        "/{tenant_id:str}/api-keys",
        summary="List API keys",
        responses=problem_responses(401, 404),
    )
    async def list_keys(
        self, tenant_id: FromPath[str], services: NamedDependency[Services]
    ) -> list[ApiKeyOut]:
        """List the tenant's keys without secrets."""
        return [
            ApiKeyOut(id=k.id, prefix=k.prefix, created_at=rfc3339(k.created_at))
            for k in await services.tenants.list_keys(tenant_id)
        ]

    @delete(
        "/{tenant_id:str}/api-keys/{key_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Revoke an API key",
        responses=problem_responses(401, 404),
    )
    async def revoke_key(
        self, tenant_id: FromPath[str], key_id: FromPath[str], services: NamedDependency[Services]
    ) -> None:
        """Revoke a key; it stops working at once."""
        await services.tenants.revoke_key(tenant_id, key_id)
