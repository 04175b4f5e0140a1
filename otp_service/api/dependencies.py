"""What controllers are handed: the use cases built in the lifespan, and the caller's tenant."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler

from otp_service.core.model import Tenant
from otp_service.errors import Unauthorized
from otp_service.log import note_tenant
from otp_service.runtime import Services


def provide_services(state: State) -> Services:
    """The use cases of this app, opened by the lifespan."""
    services: Services = state.services
    return services


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing or invalid API key")
    return token.strip()


async def provide_tenant(
    request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> Tenant:
    """Authenticate the tenant API key of the request.

    Raises:
        Unauthorized: missing, unknown or revoked key.
    """
    tenant = await services.tenants.authenticate(_bearer(request))
    note_tenant(tenant.id)
    return tenant


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Admit only the operator's ``OTP_ADMIN_TOKEN``, compared in constant time.

    Raises:
        Unauthorized: any other token.
    """
    services: Services = connection.app.state.services
    given = _bearer(connection).encode()
    if not hmac.compare_digest(given, services.admin_token):
        raise Unauthorized("missing or invalid admin token")


def fingerprint(body: msgspec.Struct) -> str:
    """A stable digest of a decoded request body, for ``Idempotency-Key`` comparisons."""
    return hashlib.sha256(msgspec.json.encode(body, order="sorted")).hexdigest()
