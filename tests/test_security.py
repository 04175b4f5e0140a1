"""Security proofs generated from the app's own OpenAPI document, so a new route is covered.

- Tenant isolation: every tenant operation, called with another tenant's ids, answers
  exactly what it answers for ids that exist nowhere, and neither reveals nor changes the
  other tenant's data.
- Credentials do not cross: every admin operation refuses a tenant key, every tenant
  operation refuses the admin token (401), while the right credential gets through.
- Size limits: every operation that reads a body answers 413 past ``OTP_MAX_BODY_BYTES``
  (announced or streamed), and a huge header gets a 4xx from the server, never a 5xx or
  a hang.

A parameter or body field these tests have no value for fails the test by name: add the
value, and the new route is covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from otp_service.__main__ import openapi_document
from otp_service.core.ids import new_id
from tests.conftest import (
    ADMIN_TOKEN,
    MakeTenant,
    Service,
    TenantHandle,
    fresh_number,
    sent_codes,
)
from tests.test_optouts import inbound

OPENAPI: dict[str, Any] = json.loads(openapi_document())
Operation = tuple[str, str, dict[str, Any]]
# Own messaging profiles: opt-outs are shared by the tenants of one profile, by design.
OTHER_PROFILE = "6f1f3b1e-2a4c-4e0e-9c55-00000000000b"
CALLER_PROFILE = "6f1f3b1e-2a4c-4e0e-9c55-00000000000a"


def _operations(scheme: str | None = None) -> list[Operation]:
    """``(METHOD, path, operation)`` for each operation (of one security scheme, if given)."""
    found = []
    for path, methods in OPENAPI["paths"].items():
        for method, operation in methods.items():
            schemes = {name for entry in operation.get("security") or [] for name in entry}
            if scheme is None or scheme in schemes:
                found.append((method.upper(), path, operation))
    return found


TENANT_OPERATIONS = _operations("ApiKey")
ADMIN_OPERATIONS = _operations("AdminToken")
BODY_OPERATIONS = [op for op in _operations() if "413" in op[2]["responses"]]


def _id(operation: Operation) -> str:
    return f"{operation[0]} {operation[1]}"


def _request(
    operation: Operation, values: Mapping[str, Any]
) -> tuple[str, str, dict[str, Any] | None]:
    """Fill an operation's path parameters, required query parameters and required body
    fields from ``values``; fail naming any the test has no value for."""
    method, path, spec = operation
    query = []
    for parameter in spec.get("parameters", []):
        name, where = parameter["name"], parameter["in"]
        if where == "path" or parameter.get("required"):
            if name not in values:
                pytest.fail(f"no test value for {where} parameter {name!r} of {_id(operation)}")
            if where == "path":
                path = path.replace(f"{{{name}}}", quote(str(values[name]), safe=""))
            elif where == "query":
                query.append(f"{name}={quote(str(values[name]), safe='')}")
    body = None
    if "requestBody" in spec:
        schema = spec["requestBody"]["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = OPENAPI["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        body = {}
        for name in schema.get("required", []):
            if name not in values:
                pytest.fail(f"no test value for body field {name!r} of {_id(operation)}")
            body[name] = values[name]
    return method, path + ("?" + "&".join(query) if query else ""), body


def _normalised(response: httpx.Response, values: Mapping[str, Any]) -> Any:
    """The JSON answer with the request's own values replaced by their names."""
    text = response.text
    for name, value in values.items():
        if isinstance(value, str) and value:
            text = text.replace(value, f"<{name}>")
    return json.loads(text) if text else None


def _shape(value: Any) -> Any:
    """Keys and value types of a JSON document (for answers that carry new ids and times)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


# --- tenant isolation ---------------------------------------------------------------------


async def _other_tenants_state(
    make_tenant: MakeTenant, sim: httpx.AsyncClient, service: Service
) -> tuple[TenantHandle, dict[str, Any], list[str]]:
    """Tenant B with a pending verification of a number that also opted out of B's profile.

    Returns B, the values naming B's things, and strings that only B may ever see.
    """
    other = await make_tenant(messaging_profile_id=OTHER_PROFILE)
    number = fresh_number()
    marker = f"b-private-{secrets.token_hex(8)}"
    started = await other.client.post(
        "/v1/verifications", json={"phone_number": number, "metadata": {"note": marker}}
    )
    assert started.status_code == 201, started.text
    verification = started.json()
    [code] = await sent_codes(sim, number)
    await inbound(sim, service, number, "STOP", profile=OTHER_PROFILE)
    values = {"verification_id": verification["id"], "phone_number": number, "code": code}
    private = [other.id, verification["id"], marker]
    private += [m["id"] for m in verification["messages"] if m["id"]]
    return other, values, private


@pytest.mark.parametrize("operation", TENANT_OPERATIONS, ids=_id)
async def test_another_tenants_ids_answer_exactly_like_missing_ones(
    operation: Operation, make_tenant: MakeTenant, sim: httpx.AsyncClient, service: Service
) -> None:
    """Tenant A naming B's verification, number or code gets what a name that exists
    nowhere gets (same status, same problem document), never B's data, and B's
    verification is untouched."""
    other, theirs, private = await _other_tenants_state(make_tenant, sim, service)
    missing = {
        "verification_id": new_id("ver", random.SystemRandom()),
        "phone_number": fresh_number(),
        "code": theirs["code"],
    }
    caller = await make_tenant(messaging_profile_id=CALLER_PROFILE)
    answers = []
    for values in (theirs, missing):
        method, url, body = _request(operation, values)
        response = await caller.client.request(method, url, json=body)
        assert response.status_code < 500, response.text
        sent = url + json.dumps(body)
        for secret in private:
            if secret not in sent:
                assert secret not in response.text, (values, response.text)
        answers.append((response.status_code, _normalised(response, values)))
    (their_status, their_body), (missing_status, missing_body) = answers
    assert their_status == missing_status, answers
    if their_status >= 400:
        assert their_body == missing_body
    else:
        assert _shape(their_body) == _shape(missing_body)
    untouched = (await other.client.get(f"/v1/verifications/{theirs['verification_id']}")).json()
    assert (untouched["status"], untouched["check_attempts"], untouched["send_count"]) == (
        "pending",
        0,
        1,
    )


def test_the_isolation_test_covers_every_tenant_route() -> None:
    """Guards the generator: it found the routes that take a tenant's ids."""
    paths = {path for _, path, _ in TENANT_OPERATIONS}
    assert "/v1/verifications/{verification_id}" in paths
    assert "/v1/opt-outs/{phone_number}" in paths
    assert len(TENANT_OPERATIONS) >= 7, paths


# --- credentials do not cross -------------------------------------------------------------


@pytest.fixture
async def credentials(
    make_tenant: MakeTenant, admin: httpx.AsyncClient
) -> tuple[TenantHandle, dict[str, Any]]:
    """A tenant with a pending verification, and values naming its real things."""
    tenant = await make_tenant()
    number = fresh_number()
    started = await tenant.client.post("/v1/verifications", json={"phone_number": number})
    assert started.status_code == 201, started.text
    spare = await admin.post(f"/admin/tenants/{tenant.id}/api-keys")
    assert spare.status_code == 201, spare.text
    return (
        tenant,
        {
            "tenant_id": tenant.id,
            "key_id": spare.json()["id"],
            "block_id": "blk_unknown",
            "verification_id": started.json()["id"],
            "phone_number": number,
            "code": "000000",
            "name": "Credential test",
        },
    )


async def _call(
    service: Service, token: str | None, operation: Operation, values: Mapping[str, Any]
) -> httpx.Response:
    method, url, body = _request(operation, values)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=15) as client:
        return await client.request(method, url, json=body)


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=_id)
async def test_admin_operations_refuse_tenant_keys(
    operation: Operation,
    credentials: tuple[TenantHandle, dict[str, Any]],
    service: Service,
) -> None:
    """A tenant key, even the one of the tenant named, is 401 on every admin operation;
    no credentials too; the admin token is not refused (so the 401 came from the key)."""
    tenant, values = credentials
    _assert_unauthorized(await _call(service, tenant.key, operation, values))
    _assert_unauthorized(await _call(service, None, operation, values))
    allowed = await _call(service, ADMIN_TOKEN, operation, values)
    assert allowed.status_code not in {401, 403}, allowed.text
    assert allowed.status_code < 500, allowed.text


@pytest.mark.parametrize("operation", TENANT_OPERATIONS, ids=_id)
async def test_tenant_operations_refuse_the_admin_token(
    operation: Operation,
    credentials: tuple[TenantHandle, dict[str, Any]],
    service: Service,
) -> None:
    """The admin token is 401 on every tenant operation; no credentials too; the tenant's
    key is not refused (so the 401 came from the token)."""
    tenant, values = credentials
    _assert_unauthorized(await _call(service, ADMIN_TOKEN, operation, values))
    _assert_unauthorized(await _call(service, None, operation, values))
    allowed = await _call(service, tenant.key, operation, values)
    assert allowed.status_code not in {401, 403}, allowed.text
    assert allowed.status_code < 500, allowed.text


def test_both_apis_were_found() -> None:
    """Guards the generator: both security schemes have operations."""
    assert len(ADMIN_OPERATIONS) >= 7
    assert len(TENANT_OPERATIONS) >= 7


# --- size limits --------------------------------------------------------------------------


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=_id)
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_every_body_over_the_limit_is_413(
    operation: Operation,
    streamed: bool,
    credentials: tuple[TenantHandle, dict[str, Any]],
    service: Service,
) -> None:
    """Past OTP_MAX_BODY_BYTES the answer is a 413 problem, whether the length is announced
    or the body streams in chunks with no length."""
    tenant, values = credentials
    method, url, _ = _request(operation, values)
    token = ADMIN_TOKEN if url.startswith("/admin") else tenant.key
    oversized = b'{"pad": "' + b"x" * service.settings.max_body_bytes + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(oversized), 4096):
            yield oversized[start : start + 4096]

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=service.url, timeout=15) as client:
        response = await client.request(
            method, url, content=chunks() if streamed else oversized, headers=headers
        )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload_too_large"


def test_the_body_limit_test_covers_the_body_routes() -> None:
    """Guards the generator: starts, checks, tenant writes and Telnyx webhooks read bodies."""
    found = {_id(op) for op in BODY_OPERATIONS}
    assert {"POST /v1/verifications", "POST /admin/tenants", "POST /webhooks/telnyx"} <= found


def _raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` on a fresh connection and read the status line (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        with contextlib.suppress(OSError):  # the server may close while we still send
            connection.sendall(request)
        try:
            return connection.recv(64)
        except OSError as exc:
            return repr(exc).encode()


@pytest.mark.parametrize(
    "header",
    [
        b"X-Padding: " + b"a" * (1 << 20),
        b"Authorization: Bearer otpk_" + b"a" * (1 << 20),
        b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(100_000)).rstrip(b"\r\n"),
    ],
    ids=["one 1 MiB header", "1 MiB Authorization", "100000 headers"],
)
async def test_a_huge_header_is_a_clear_4xx_and_the_service_stays_up(
    header: bytes, service: Service, anonymous: httpx.AsyncClient
) -> None:
    """The server answers 400 or 431 at once, not a 5xx and not a hang, and serves on."""
    port = int(service.url.rsplit(":", 1)[1])
    request = b"GET /v1/webhook-public-key HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
    status_line = await asyncio.to_thread(_raw_exchange, port, request)
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", status_line)
    assert match is not None, status_line
    assert int(match.group(1)) in {400, 431}, status_line
    assert (await anonymous.get("/health/live")).status_code == 200


@pytest.mark.parametrize("size", [8 << 10, 64 << 10])
async def test_a_long_credential_is_refused_as_unauthorized(
    size: int, service: Service, anonymous: httpx.AsyncClient
) -> None:
    """A long but acceptable header reaches the app, which refuses it as 401, not 5xx."""
    headers = {"Authorization": "Bearer otpk_" + "a" * size}
    _assert_unauthorized(await anonymous.get("/v1/webhook-public-key", headers=headers))
    _assert_unauthorized(await anonymous.get("/admin/tenants/ten_x", headers=headers))
