"""Secrets at rest: after real flows, neither Redis nor the logs hold a code or an API key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from otp_service.log import TextFormatter
from tests.conftest import (
    ADMIN_TOKEN,
    SECRET_KEY,
    MakeTenant,
    MovableClock,
    Service,
    Simulator,
    fresh_number,
    sent_codes,
)

CODE_LENGTH = 10  # long codes: a 10-digit code cannot turn up by chance in stored timestamps


async def dump(redis: Redis) -> dict[str, list[str]]:
    """Every key of the Redis and every string it holds (values, hash fields, members)."""
    names = [name async for name in redis.scan_iter(match="*", count=1000)]
    async with redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.type(name)
        types = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for name, kind in zip(names, types, strict=True):
            if kind == "string":
                pipe.get(name)
            elif kind == "hash":
                pipe.hgetall(name)
            elif kind == "list":
                pipe.lrange(name, 0, -1)
            elif kind == "set":
                pipe.smembers(name)
            elif kind == "zset":
                pipe.zrange(name, 0, -1)
            elif kind == "stream":
                pipe.xrange(name)
            else:
                pipe.echo("")  # the key expired between SCAN and TYPE
        values = await pipe.execute()
    return {name: list(_strings(value)) for name, value in zip(names, values, strict=True)}


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | set | tuple):
        return [s for item in value for s in _strings(item)]
    return [str(value)]


async def wait_until_delivered(client: httpx.AsyncClient, verification_id: str) -> None:
    """Wait for the simulator's delivery receipts to reach every message of a verification."""
    for _ in range(100):
        body = (await client.get(f"/v1/verifications/{verification_id}")).json()
        if all(message["status"] == "delivered" for message in body["messages"]):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"delivery receipts never arrived: {body['messages']}")


def service_log_lines(
    records: list[logging.LogRecord], service: Service, simulator: Simulator
) -> list[str]:
    """What the service logged: records of every thread but the test's and the simulator's."""
    sim_thread = f"uvicorn-{simulator.url.rsplit(':', 1)[1]}"
    text = TextFormatter()  # the line as written, its fields and any traceback included
    lines = [
        text.format(record)
        for record in records
        if record.threadName not in {"MainThread", sim_thread}
    ]
    assert lines, f"no record of the service at {service.url} was captured"
    return lines


async def test_no_code_or_api_key_is_stored_or_logged(
    *,
    make_tenant: MakeTenant,
    sim: httpx.AsyncClient,
    redis: Redis,
    clock: MovableClock,
    service: Service,
    simulator: Simulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a start, a wrong check, a resend and an approval, neither Redis nor the service's
    logs hold any code sent, the API key or the full phone number."""
    caplog.set_level(logging.DEBUG)
    tenant = await make_tenant(code_length=CODE_LENGTH)
    number = fresh_number()

    started = await tenant.client.post(
        "/v1/verifications",
        json={"phone_number": number, "metadata": {"order": "42"}},
        headers={"Idempotency-Key": "secrets-at-rest-1"},
    )
    assert started.status_code == 201, started.text
    verification_id = started.json()["id"]
    [first] = await sent_codes(sim, number)
    wrong = str((int(first) + 1) % 10**CODE_LENGTH).zfill(CODE_LENGTH)
    checked = await tenant.client.post(
        f"/v1/verifications/{verification_id}/check", json={"code": wrong}
    )
    assert checked.json()["valid"] is False, checked.text

    clock.advance(31)
    resent = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert resent.status_code == 200, resent.text
    codes = await sent_codes(sim, number)
    assert len(codes) == 2
    assert all(len(code) == CODE_LENGTH for code in codes)
    await wait_until_delivered(tenant.client, verification_id)
    approved = await tenant.client.post(
        "/v1/verifications/check", json={"phone_number": number, "code": codes[0]}
    )
    assert approved.json()["status"] == "approved", approved.text

    secrets = [*codes, tenant.key, SECRET_KEY, ADMIN_TOKEN]
    stored = await dump(redis)
    ours = [name for name in stored if verification_id in name]
    assert ours, "the verification is not in the scanned Redis"
    assert sum(v.count("$argon2id$") for name in ours for v in stored[name]) == 2
    for name, values in stored.items():
        for secret in secrets:
            assert secret not in name, f"a secret is in the key name {name!r}"
            for value in values:
                assert secret not in value, f"a secret is stored in {name!r}"

    lines = service_log_lines(caplog.records, service, simulator)
    assert any(verification_id in line for line in lines), lines
    national = number.removeprefix("+44")
    for line in lines:
        for secret in [*secrets, number, number.removeprefix("+"), national]:
            assert secret not in line, f"the service logged a secret: {line}"


async def test_an_api_key_is_stored_only_as_a_keyed_digest(
    make_tenant: MakeTenant, admin: httpx.AsyncClient, redis: Redis
) -> None:
    """The stored record of an API key holds a keyed digest of it and no part beyond its prefix."""
    tenant = await make_tenant()
    [listed] = (await admin.get(f"/admin/tenants/{tenant.id}/api-keys")).json()
    stored = await dump(redis)
    records = [
        json.loads(value)
        for values in stored.values()
        for value in values
        if listed["id"] in value and value.startswith("{")
    ]
    assert records, "the API key's record is not in Redis"
    for record in records:
        assert tenant.key not in json.dumps(record)
        assert record.get("prefix", listed["prefix"]) == listed["prefix"]
        digest = record["digest"]
        assert re.fullmatch(r"[0-9a-f]{64}", digest), digest
        assert digest != hashlib.sha256(tenant.key.encode()).hexdigest()  # keyed, not plain
    unkeyed = hashlib.sha256(tenant.key.encode()).hexdigest()
    for name, values in stored.items():
        assert tenant.key not in name
        assert unkeyed not in name
        assert all(tenant.key not in value and unkeyed not in value for value in values)
