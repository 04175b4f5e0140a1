"""Use cases of the admin API and CLI: tenants, their settings and their API keys.

API keys are 256 random bits shown once; the store keeps only an HMAC-SHA256 of the key
under a key derived from ``OTP_SECRET_KEY``. Keys are high-entropy, so a fast keyed hash is
enough (nothing to brute-force) and lets authentication be one lookup by digest instead of
a scan with a slow hash.

While ``OTP_SECRET_KEY`` is rotated, a key not found under the current secret's digest is
looked up under the previous secret's; when found there it is re-stored under the current
digest at once, so once every key has been used the previous secret can be dropped.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import random
from typing import Final

import msgspec

from otp_service.adapters.dns import resolve
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.clock import Clock
from otp_service.core.derive import api_key_digest
from otp_service.core.ids import new_id
from otp_service.core.model import ApiKey, Tenant, TenantSettings
from otp_service.core.phone import mask
from otp_service.core.senders import settings_problems
from otp_service.core.urls import InvalidEventUrl, event_url_problem, parse_event_url
from otp_service.core.validation import every_error
from otp_service.errors import InvalidInput, NotFound, Unauthorized

log = logging.getLogger("otp_service.usecases.tenants")

KEY_PREFIX: Final = "otpk_"
_SHOWN_PREFIX: Final = 12


def settings_invalid(value: object, exc: msgspec.ValidationError, field: str) -> InvalidInput:
    """The 422 for settings that do not fit ``TenantSettings``, listing every bad field.

    ``field`` is where the settings sit in the request (``settings``), prefixed to each entry.
    """
    problems = [
        {"field": f"{field}.{bad.field}" if bad.field else field, "message": bad.message}
        for bad in every_error(value, TenantSettings, exc)
    ]
    return InvalidInput("the tenant settings are invalid", problems)


class Tenants:
    """Create and change tenants; issue, list, revoke and authenticate API keys."""

    def __init__(
        self,
        *,
        store: TenantStore,
        key_pepper: bytes,
        clock: Clock,
        rng: random.Random,
        allow_private_webhooks: bool,
        previous_key_pepper: bytes | None = None,
    ) -> None:
        self._store = store
        self._previous_pepper = previous_key_pepper
        self._allow_private = allow_private_webhooks
        self._pepper = key_pepper
        self._clock = clock
        self._rng = rng

    async def _check(self, settings: TenantSettings) -> TenantSettings:
        """Raise ``InvalidInput`` listing every rule the settings break beyond their schema."""
        problems = settings_problems(settings)
        url = settings.events_webhook_url
        if url is not None:
            addresses: list[str] = []
            if not self._allow_private:
                with contextlib.suppress(InvalidEventUrl):  # event_url_problem says why
                    addresses = await resolve(parse_event_url(url).host)
            problem = event_url_problem(url, addresses, allow_private=self._allow_private)
            if problem is not None:
                problems.append({"field": "settings.events_webhook_url", "message": problem})
        if problems:
            raise InvalidInput("the tenant settings are invalid", problems)
        return settings

    @staticmethod
    def _warn(tenant: Tenant) -> None:
        """Log what the admin API's ``warnings`` say, where operators watch (numbers masked)."""
        for number, script in tenant.settings.sandbox_numbers.items():
            if script.fixed_code is not None:
                fields = {"tenant": tenant.id, "number": mask(number)}
                log.warning(
                    "sandbox fixed code: a password for the number", extra={"fields": fields}
                )

    def digest(self, key: str) -> str:
        """Return the keyed hash under which an API key is stored."""
        return api_key_digest(self._pepper, key)

    async def create(self, name: str, settings: TenantSettings) -> Tenant:
        """Create a tenant.

        Raises:
            InvalidInput: settings that break a sender or country rule.
        """
        now = self._clock.now_ms()
        tenant = Tenant(
            id=new_id("ten", self._rng),
            name=name,
            settings=await self._check(settings),
            created_at=now,
            updated_at=now,
        )
        await self._store.create(tenant)
        self._warn(tenant)
        return tenant

    async def _rekeyed(
        self, key: str, digest: str, previous_pepper: bytes
    ) -> tuple[str, str] | None:
        """Find a key by its previous-secret digest and re-store it under ``digest``.

        The answer is read back under ``digest``: a key revoked meanwhile is not found,
        and a key another process moved first is.
        """
        old = api_key_digest(previous_pepper, key)
        found = await self._store.find_key(old)
        if found is None:
            return None
        await self._store.rekey(found[0], found[1], old, digest)
        log.info("tenant=%s api key %s re-stored under the current secret", *found)
        return await self._store.find_key(digest)

    async def get(self, tenant_id: str) -> Tenant:
        """Return a tenant.

        Raises:
            NotFound: ``tenant_not_found``.
        """
        tenant = await self._store.get(tenant_id)
        if tenant is None:
            raise NotFound("no such tenant", "tenant_not_found")
        return tenant

    async def list_tenants(self, after: str | None, limit: int) -> tuple[list[Tenant], str | None]:
        """A page of tenants, oldest first, and where the next page starts (``None``: last).

        ``after`` is the previous page's position, as this returned it.
        """
        return await self._store.page(after, limit)

    async def reindex(self) -> int:
        """List every tenant in the admin's index (those created before it included).

        Returns how many tenants there are.
        """
        return await self._store.reindex()

    async def update(
        self, tenant_id: str, *, name: str | None, changes: dict[str, object]
    ) -> Tenant:
        """Rename a tenant and change some settings; the result must be valid as a whole.

        The changes are merged into the stored settings and the merge is validated inside
        the store's compare-and-set loop: when another PATCH lands in between, the changes
        are merged into its result and validated again, so what is written is always exactly
        what was validated (two PATCHes each valid alone never store an invalid pair).

        Raises:
            NotFound: ``tenant_not_found``.
            InvalidInput: the changed settings are invalid; nothing is written.
        """

        async def change(tenant: Tenant) -> Tenant:
            merged = msgspec.to_builtins(tenant.settings) | changes
            try:
                settings = msgspec.convert(merged, TenantSettings)
            except msgspec.ValidationError as exc:
                raise settings_invalid(merged, exc, "settings") from exc
            return msgspec.structs.replace(
                tenant,
                name=name or tenant.name,
                settings=await self._check(settings),
                updated_at=self._clock.now_ms(),
            )

        updated = await self._store.update(tenant_id, change)
        if updated is None:
            raise NotFound("no such tenant", "tenant_not_found")
        if "sandbox_numbers" in changes:
            self._warn(updated)
        return updated

    async def create_key(self, tenant_id: str) -> tuple[ApiKey, str]:
        """Issue a key; returns the stored record and the key itself, shown this once.

        Raises:
            NotFound: ``tenant_not_found``.
        """
        await self.get(tenant_id)
        secret = self._rng.getrandbits(256).to_bytes(32, "big")
        key = KEY_PREFIX + base64.urlsafe_b64encode(secret).decode().rstrip("=")
        record = ApiKey(
            id=new_id("key", self._rng),
            tenant_id=tenant_id,
            prefix=key[:_SHOWN_PREFIX],
            digest=self.digest(key),
            created_at=self._clock.now_ms(),
        )
        await self._store.add_key(record)
        return record, key

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        """List a tenant's keys, without secrets.

        Raises:
            NotFound: ``tenant_not_found``.
        """
        await self.get(tenant_id)
        return await self._store.list_keys(tenant_id)

    async def revoke_key(self, tenant_id: str, key_id: str) -> None:
        """Revoke a key; it stops working at once.

        Raises:
            NotFound: ``tenant_not_found`` or ``api_key_not_found``.
        """
        await self.get(tenant_id)
        if not await self._store.revoke_key(tenant_id, key_id):
            raise NotFound("no such API key for this tenant", "api_key_not_found")

    async def authenticate(self, key: str) -> Tenant:
        """Return the tenant an API key belongs to.

        Raises:
            Unauthorized: unknown, revoked or malformed key.
        """
        tenant, _ = await self.key_owner(key)
        return tenant

    async def key_owner(self, key: str) -> tuple[Tenant, str]:
        """Return the tenant an API key belongs to and the key's id.

        Raises:
            Unauthorized: unknown, revoked or malformed key.
        """
        if not key.startswith(KEY_PREFIX) or len(key) > 128:  # noqa: PLR2004
            raise Unauthorized("missing or invalid API key")
        digest = self.digest(key)
        found = await self._store.find_key(digest)
        if found is None and self._previous_pepper is not None:
            found = await self._rekeyed(key, digest, self._previous_pepper)
        if found is None:
            raise Unauthorized("missing or invalid API key")
        tenant = await self._store.get(found[0])
        if tenant is None:
            raise Unauthorized("missing or invalid API key")
        return tenant, found[1]
