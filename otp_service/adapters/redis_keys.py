"""Every Redis key the service writes, in one place.

Each key carries a hash tag (the part in braces) so that every script touches one Redis
Cluster slot: everything that belongs to a tenant shares the tag ``{t:<tenant id>}``, which
lets one script read a verification, its phone-number index and its idempotency record
together. Lookups that start from something other than a tenant (an API key's hash, a
Telnyx message id, a webhook event id) are pointers in slots of their own, written so that
a crash between two writes leaves nothing that works half-way. The workers find tenants
with due work through hints spread over a fixed number of shards.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Final

HINT_SHARDS: Final = 16
"""How many hint keys the workers walk; each tenant's hint lives in one, by its id."""


def _tenant(tenant_id: str) -> str:
    return f"otp:{{t:{tenant_id}}}"


def tenant(tenant_id: str) -> str:
    """The tenant record (JSON)."""
    return f"{_tenant(tenant_id)}:tenant"


def tenant_index() -> str:
    """Every tenant's id, for the admin's list (sorted set, score 0, ``<created ms>:<id>``).

    The one key shared by all tenants, and acceptable as such because it is admin-only: it
    is written when a tenant is created (tenants are never deleted) and read only by
    ``GET /admin/tenants``; no start, check, receipt or job ever touches it, so it is on no
    hot path. Its members sort by creation time (the 15-digit, zero-padded ms), then id.
    """
    return "otp:{admin}:tenants"


def api_keys(tenant_id: str) -> str:
    """Hash of the tenant's API keys: key id to the stored key (JSON, no secret)."""
    return f"{_tenant(tenant_id)}:keys"


def api_key_lookup(digest: str) -> str:
    """Pointer from an API key's keyed hash to ``<tenant id> <key id>``."""
    return f"otp:{{k:{digest}}}"


def verification(tenant_id: str, verification_id: str) -> str:
    """A verification (hash)."""
    return f"{_tenant(tenant_id)}:ver:{verification_id}"


def pending(tenant_id: str, e164: str) -> str:
    """The id of the tenant's pending verification for a number; expires with it."""
    return f"{_tenant(tenant_id)}:pending:{e164}"


def blocks(tenant_id: str) -> str:
    """The tenant's blocks (hash: block id to block JSON), what the admin API lists.

    The fraud guard's and the limits' other keys (``fg:...``, ``lim:...``) are named by the
    Lua scripts from the tenant's prefix, since which exist depends on the request
    (``adapters/lua/_lib.lua``); all share the tenant's slot.
    """
    return f"{_tenant(tenant_id)}:blocks"


def stats(tenant_id: str, hour_ms: int) -> str:
    """The tenant's conversion counters for the hour starting at ``hour_ms`` (hash).

    Fields are ``<country>|<sender_type>|<metric>``; the Lua prelude (``count_stat``) builds
    the same name from the tenant record's key, so the two must change together.
    """
    return f"{_tenant(tenant_id)}:stats:{hour_ms}"


STATS_KEEP_MS: Final = 40 * 24 * 3600 * 1000
"""How long an hour's counters are kept (``STATS_KEEP_MS`` in ``lua/_lib.lua``)."""


def idempotency(tenant_id: str, key: str) -> str:
    """What a POST with this ``Idempotency-Key`` did; the key is hashed to bound its length."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{_tenant(tenant_id)}:idem:{digest}"


def outbox(tenant_id: str) -> list[str]:
    """The tenant's outbox: due jobs (sorted set), leased jobs (sorted set), job bodies (hash).

    Follow-up work (tenant events, expiry timers, fallback jobs) is written here by the same
    script as the change it follows, so both share the tenant's slot.
    """
    base = _tenant(tenant_id)
    return [f"{base}:work", f"{base}:leases", f"{base}:jobs"]


def hints(shard: int) -> str:
    """Which tenants of a shard may have work, scored by when to look (ms).

    Hints are spread over ``HINT_SHARDS`` keys so that no key is shared by all tenants.
    """
    return f"otp:{{w:{shard}}}:hints"


def hint_shard(tenant_id: str) -> int:
    """The hint shard of a tenant (stable across processes and restarts)."""
    return zlib.crc32(tenant_id.encode()) % HINT_SHARDS


def message(message_id: str) -> str:
    """Pointer from a Telnyx message id to ``<tenant id> <verification id>``."""
    return f"otp:{{m:{message_id}}}"


def early_receipts(message_id: str) -> str:
    """Receipts for a message whose pointer is not written yet, in the pointer's slot."""
    return f"otp:{{m:{message_id}}}:early"


def webhook_event(event_id: str) -> str:
    """Marks a Telnyx webhook event as handled, so a duplicate is not applied twice."""
    return f"otp:{{e:{event_id}}}"
