"""Tenants and their API keys in Redis.

A key is written to the tenant's list before its lookup pointer, and the pointer is deleted
before the list entry on revocation: a crash in between leaves a listed key that does not
work, never a working key that the admin cannot see or revoke.

During a secret rotation a key found by its digest under the previous secret is re-stored
under the current one (``rekey``). Revocation and the move are each one script that checks
the record is still as read, so a revocation racing a move never leaves a working pointer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

import msgspec
from redis.asyncio import Redis

from otp_service.adapters import redis_keys as keys
from otp_service.adapters.redis_scripts import load_script, text, translated
from otp_service.adapters.redis_work import WorkQueue
from otp_service.core.model import ApiKey, Tenant


def index_member(tenant: Tenant) -> str:
    """A tenant's entry in the admin's index: ``<created ms, 15 digits>:<id>``.

    Entries then sort by creation time, then id.
    """
    return f"{tenant.created_at:015d}:{tenant.id}"


class TenantStore:
    """Tenant records and API keys."""

    def __init__(self, redis: Redis, work: WorkQueue) -> None:
        self._redis = redis
        self._work = work
        self._tenant_decoder = msgspec.json.Decoder(Tenant)
        self._key_decoder = msgspec.json.Decoder(ApiKey)
        self._compare_and_set = load_script(redis, "compare_and_set")
        self._rekey = load_script(redis, "api_key_rekey")
        self._revoke = load_script(redis, "api_key_revoke")
        self._import = load_script(redis, "tenant_import")

    async def create(self, tenant: Tenant) -> None:
        """Store a new tenant (ids are random, so an existing one is never overwritten).

        The record is written before the admin's index entry, so the list never shows a
        tenant that does not exist. Its hint is written at once, so the workers' idle
        re-visits know the tenant even if the hint of its first job is lost (``redis_work``).
        """
        async with translated():
            await self._redis.set(keys.tenant(tenant.id), msgspec.json.encode(tenant), nx=True)
            await self._redis.zadd(keys.tenant_index(), {index_member(tenant): 0})
        await self._work.hint(tenant.id, tenant.created_at, tenant.created_at)

    async def page(self, after: str | None, limit: int) -> tuple[list[Tenant], str | None]:
        """Return up to ``limit`` tenants, oldest first, after the index member ``after``.

        The second value is the member to pass as ``after`` for the next page, ``None`` on
        the last. The records are read with one pipelined GET each: they live in their
        tenants' slots, so no single command could read them together on a cluster.
        """
        start = "-" if after is None else f"({after}"
        async with translated():
            members = await self._redis.zrangebylex(
                keys.tenant_index(), start, "+", start=0, num=limit + 1
            )
            page = [text(member) for member in members[:limit]]
            pipeline = self._redis.pipeline(transaction=False)
            for member in page:
                pipeline.get(keys.tenant(member.split(":", 1)[1]))
            records = await pipeline.execute() if page else []
        tenants = [self._tenant_decoder.decode(raw) for raw in records if raw is not None]
        return tenants, page[-1] if len(members) > limit else None

    async def reindex(self) -> int:
        """Add every tenant to the admin's index; return how many tenants there are.

        For tenants created before the index existed. Every tenant ever created has a worker
        hint (written at creation, never removed), so the hint shards list them all, on
        Redis Cluster too, where no ``SCAN`` sees every node. Adding is idempotent.
        """
        total = 0
        for shard in range(keys.HINT_SHARDS):
            async with translated():
                hinted = cast("list[bytes]", await self._redis.zrange(keys.hints(shard), 0, -1))
            for tenant_id in map(text, hinted):
                tenant = await self.get(tenant_id)
                if tenant is not None:
                    async with translated():
                        await self._redis.zadd(keys.tenant_index(), {index_member(tenant): 0})
                    total += 1
        return total

    async def get(self, tenant_id: str) -> Tenant | None:
        """Return the tenant, or ``None`` when there is none with this id."""
        async with translated():
            raw = await self._redis.get(keys.tenant(tenant_id))
        return None if raw is None else self._tenant_decoder.decode(raw)

    async def update(
        self, tenant_id: str, change: Callable[[Tenant], Awaitable[Tenant]]
    ) -> Tenant | None:
        """Apply ``change`` to the stored tenant, retrying if it changed meanwhile.

        ``change`` runs again on each retry, on the value read that time, so a check it makes
        always holds for what is written. It may raise (e.g. invalid settings); nothing is
        written then.
        """
        key = keys.tenant(tenant_id)
        while True:
            async with translated():
                raw = await self._redis.get(key)
            if raw is None:
                return None
            updated = await change(self._tenant_decoder.decode(raw))
            async with translated():
                replaced = await self._compare_and_set(
                    keys=[key], args=[raw, msgspec.json.encode(updated)]
                )
            if replaced:
                return updated

    async def add_key(self, key: ApiKey) -> None:
        """List the key under its tenant, then make it usable."""
        async with translated():
            await self._redis.hset(keys.api_keys(key.tenant_id), key.id, msgspec.json.encode(key))
            await self._redis.set(keys.api_key_lookup(key.digest), f"{key.tenant_id} {key.id}")

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        """Return the tenant's keys, oldest first."""
        async with translated():
            raw = await self._redis.hvals(keys.api_keys(tenant_id))
        found = [self._key_decoder.decode(value) for value in raw]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def revoke_key(self, tenant_id: str, key_id: str) -> bool:
        """Stop the key working at once, then unlist it; ``False`` when it is not the tenant's."""
        listed = keys.api_keys(tenant_id)
        while True:
            async with translated():
                raw = await self._redis.hget(listed, key_id)
                if raw is None:
                    return False
                key = self._key_decoder.decode(raw)
                lookup = keys.api_key_lookup(key.digest)
                if await self._revoke(keys=[listed, lookup], args=[key_id, raw]):
                    return True

    async def rekey(self, tenant_id: str, key_id: str, old_digest: str, new_digest: str) -> None:
        """Re-store a key found by ``old_digest`` under ``new_digest``, in one step.

        Nothing is written when the key was revoked or moved meanwhile; the caller looks the
        key up again by ``new_digest`` either way.
        """
        listed = keys.api_keys(tenant_id)
        async with translated():
            raw = await self._redis.hget(listed, key_id)
            if raw is None:
                return
            record = self._key_decoder.decode(raw)
            if record.digest != old_digest:
                return
            moved = msgspec.structs.replace(record, digest=new_digest)
            await self._rekey(
                keys=[listed, keys.api_key_lookup(old_digest), keys.api_key_lookup(new_digest)],
                args=[key_id, raw, msgspec.json.encode(moved), f"{tenant_id} {key_id}"],
            )

    async def find_key(self, digest: str) -> tuple[str, str] | None:
        """Return ``(tenant id, key id)`` for a key's keyed hash, or ``None``."""
        async with translated():
            raw = await self._redis.get(keys.api_key_lookup(digest))
        if raw is None:
            return None
        tenant_id, key_id = text(raw).split(" ", 1)
        return tenant_id, key_id

    async def exists(self, tenant_id: str) -> bool:
        """Whether a tenant with this id is stored."""
        async with translated():
            return bool(await self._redis.exists(keys.tenant(tenant_id)))

    async def put(self, tenant: Tenant, api_keys: list[ApiKey], *, replace: bool) -> bool:
        """Store a tenant and exactly these keys as they are (``import``); ``False``: it exists.

        The record and the key list are written by one script in the tenant's slot. The order
        around it keeps ``add_key``'s and ``revoke_key``'s promise (a crash never leaves a
        working key the admin cannot see): the pointers of replaced keys go before the script
        unlists them, the new keys' pointers come after it lists them. The admin's index entry
        and the workers' hint follow, as ``create`` writes them.
        """
        old = await self.get(tenant.id) if replace else None
        if old is not None:
            kept = {key.digest for key in api_keys}
            for key in await self.list_keys(tenant.id):
                if key.digest not in kept:
                    async with translated():
                        await self._redis.delete(keys.api_key_lookup(key.digest))
        pairs: list[str | bytes] = []
        for key in api_keys:
            pairs += [key.id, msgspec.json.encode(key)]
        async with translated():
            written = await self._import(
                keys=[keys.tenant(tenant.id), keys.api_keys(tenant.id)],
                args=["1" if replace else "0", msgspec.json.encode(tenant), *pairs],
            )
        if not written:
            return False
        async with translated():
            for key in api_keys:
                await self._redis.set(keys.api_key_lookup(key.digest), f"{tenant.id} {key.id}")
            if old is not None and index_member(old) != index_member(tenant):
                await self._redis.zrem(keys.tenant_index(), index_member(old))
            await self._redis.zadd(keys.tenant_index(), {index_member(tenant): 0})
        await self._work.hint(tenant.id, tenant.created_at, tenant.created_at)
        return True
