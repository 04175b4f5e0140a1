"""HTTP Basic the way Twilio's SDKs send it, mapped to a tenant and one of its API keys.

The password is always one of the tenant's API keys: it is what authenticates (one keyed
hash lookup, as on ``/v1``). The user name must then name that same tenant, in either of
Twilio's two ways: the tenant's account SID (``Client(account_sid, auth_token)``), or the
key's own ``SK`` SID (``Client(api_key_sid, api_key_secret, account_sid)``). A user name of
another tenant or another key is refused like a wrong password, so nothing tells a caller
which half was wrong. The path's ``ServiceSid`` must be the tenant's service: any other
is 20404, as Twilio answers for a service the account does not own.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from otp_service.api.twilio.errors import not_found, unauthorized
from otp_service.core import twilio_ids
from otp_service.core.model import Tenant
from otp_service.errors import Unauthorized
from otp_service.log import note_tenant
from otp_service.runtime import Services


@dataclass(frozen=True, slots=True)
class TwilioCaller:
    """The authenticated tenant and its SIDs, as the resources name them."""

    tenant: Tenant
    account_sid: str
    service_sid: str


def _basic(request: Request[Any, Any, Any]) -> tuple[str, str]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise unauthorized()
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise unauthorized() from exc
    user, colon, password = decoded.partition(":")
    if not colon:
        raise unauthorized()
    return user, password


async def provide_twilio_caller(
    request: Request[Any, Any, Any], services: NamedDependency[Services]
) -> TwilioCaller:
    """Authenticate the request and check its ``ServiceSid``.

    Raises:
        TwilioError: 20003 for missing or wrong credentials, 20404 for another service.
    """
    user, password = _basic(request)
    try:
        tenant, key_id = await services.tenants.key_owner(password)
    except Unauthorized as exc:
        raise unauthorized() from exc
    account_sid = twilio_ids.sid_of(twilio_ids.ACCOUNT, tenant.id)
    if user not in {account_sid, twilio_ids.sid_of(twilio_ids.API_KEY, key_id)}:
        raise unauthorized()
    service_sid = twilio_ids.sid_of(twilio_ids.SERVICE, tenant.id)
    if request.path_params.get("service_sid") != service_sid:
        raise not_found(request.url.path.removeprefix("/twilio"))
    note_tenant(tenant.id)
    return TwilioCaller(tenant=tenant, account_sid=account_sid, service_sid=service_sid)
