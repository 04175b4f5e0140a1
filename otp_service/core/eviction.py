"""Whether a Redis ``maxmemory-policy`` keeps tenant data safe.

Tenants, their settings and their API keys are stored without a TTL and nowhere else, so a
Redis that evicts them when full loses them for good: every key of the tenant answers 401.
Only ``noeviction`` is safe. The ``volatile-*`` policies spare keys without a TTL, but they
evict keys that have one, and those are live verifications (a code sent and not yet
checked) and the rate limits and fraud counters: a full Redis would then quietly approve
nothing, or let abuse through, instead of refusing writes with an error the service
reports (503) and an operator sees. ``allkeys-*`` policies evict tenants themselves.
"""

from __future__ import annotations

from typing import Final

SAFE_POLICY: Final = "noeviction"


def eviction_problem(policy: str) -> str | None:
    """Why ``policy`` (as ``CONFIG GET maxmemory-policy`` reports it) is unsafe, or ``None``.

    The reason completes "Redis at <url> has ...", so the caller can name the server.
    """
    if policy.strip().lower() == SAFE_POLICY:
        return None
    return (
        f"maxmemory-policy {policy}, which can evict tenant keys or live verifications;"
        f" set it to {SAFE_POLICY}"
    )


def masked_url(url: str) -> str:
    """``url`` with the password (or a lone user name used as one) replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _ = credentials.partition(":")
    hidden = f"{user}:***" if colon else "***"
    return f"{scheme}://{hidden}@{host}{slash}{path}"
