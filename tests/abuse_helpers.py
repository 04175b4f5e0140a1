"""Helpers of the abuse-protection tests (limits and fraud guard), over HTTP.

A refusal by a limit must name the limit, say when to retry (the body's ``retry_after`` and
the ``Retry-After`` header agree) and send nothing; ``refused`` checks all three at once.
"""

from __future__ import annotations

import os
import random
import re
from typing import Any

import httpx
import phonenumbers

from tests.conftest import TenantHandle

_draw = random.Random(os.getpid() + 8)  # noqa: S311  (test data, not secrets)
_used: set[str] = set()


def range_numbers(prefix: str, count: int) -> list[str]:
    """``count`` valid numbers starting with ``prefix``, none used before in this session.

    Pumping targets a narrow range: these share the prefix the fraud guard watches.
    """
    tail = 13 - len(prefix)  # +44 and 10 national digits
    found: list[str] = []
    while len(found) < count:
        candidate = prefix + "".join(str(_draw.randrange(10)) for _ in range(tail))
        if candidate in _used:
            continue
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate, None)):
            _used.add(candidate)
            found.append(candidate)
    return found


async def start(
    tenant: TenantHandle, number: str, keys: dict[str, str] | None = None, **extra: object
) -> httpx.Response:
    """POST /v1/verifications, on behalf of the asker ``keys`` when given."""
    body: dict[str, object] = {"phone_number": number, **extra}
    if keys is not None:
        body["rate_limit_keys"] = keys
    return await tenant.client.post("/v1/verifications", json=body)


async def check(
    tenant: TenantHandle, verification_id: str, code: str, keys: dict[str, str] | None = None
) -> httpx.Response:
    """POST /v1/verifications/{id}/check."""
    body: dict[str, object] = {"code": code}
    if keys is not None:
        body["rate_limit_keys"] = keys
    return await tenant.client.post(f"/v1/verifications/{verification_id}/check", json=body)


async def check_by_phone(
    tenant: TenantHandle, number: str, code: str, keys: dict[str, str] | None = None
) -> httpx.Response:
    """POST /v1/verifications/check (by phone number)."""
    body: dict[str, object] = {"phone_number": number, "code": code}
    if keys is not None:
        body["rate_limit_keys"] = keys
    return await tenant.client.post("/v1/verifications/check", json=body)


async def inbox(sim: httpx.AsyncClient, number: str) -> list[str]:
    """The codes the simulator took for ``number``, oldest first."""
    response = await sim.get("/_sim/messages", params={"to": number})
    response.raise_for_status()
    return [message["text"].split(" ", 1)[0] for message in response.json()]


def assert_limited(response: httpx.Response, limit: str) -> int:
    """A 429 ``rate_limited`` naming ``limit``; returns its ``retry_after`` (seconds)."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == "rate_limited", body
    assert body["limit"] == limit, body
    retry_after = body["retry_after"]
    assert isinstance(retry_after, int), body
    assert retry_after >= 1, body
    assert response.headers["Retry-After"] == str(retry_after)
    return retry_after


async def refused(
    sim: httpx.AsyncClient,
    tenant: TenantHandle,
    number: str,
    limit: str,
    keys: dict[str, str] | None = None,
) -> int:
    """Start for ``number``: refused by ``limit`` and nothing sent; returns ``retry_after``."""
    before = len(await inbox(sim, number))
    retry_after = assert_limited(await start(tenant, number, keys), limit)
    assert len(await inbox(sim, number)) == before, f"{limit} refused a start but it was sent"
    return retry_after


def wrong(codes: list[str]) -> str:
    """A code of the same length as those sent that is none of them."""
    length = len(codes[0])
    candidate = 0
    while f"{candidate:0{length}d}" in codes:
        candidate += 1
    return f"{candidate:0{length}d}"


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of a Prometheus sample with exactly these labels (0 when absent)."""
    wanted = sorted(f'{key}="{value}"' for key, value in labels.items())
    for line in exposition.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and sorted(match.group(1).split(",")) == wanted:
            return float(match.group(2))
    return 0.0


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """Scrape /metrics (the service's, so a test compares before and after)."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    return sample(response.text, name, **labels)


async def blocks(admin: httpx.AsyncClient, tenant_id: str) -> list[dict[str, Any]]:
    """GET /admin/tenants/{id}/blocks: the blocks in force."""
    response = await admin.get(f"/admin/tenants/{tenant_id}/blocks")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found
