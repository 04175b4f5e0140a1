"""The HTTP edge: bodies that are not JSON, bodies not declared JSON, exact types, methods."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    DEFAULT_SETTINGS,
    Service,
    Simulator,
    TenantHandle,
    fresh_number,
    sent_codes,
)
from tests.test_webhooks_api import signed

PROBLEM_JSON = "application/problem+json"

NOT_JSON = {
    "invalid UTF-8": b'{"code": "\xff"}',
    "nested 1,000 deep": b"[" * 1000 + b"]" * 1000,
    "nested 1,000 deep in a field": b'{"settings": {"brand": ' + b"[" * 1000 + b"]" * 1000 + b"}}",
    "truncated": b'{"code": "1234',
    "JSON then garbage": b'{"unknown": 1} {',
}

# Every route that takes a JSON body, as (method, path template, who calls it).
JSON_ROUTES = [
    ("POST", "/v1/verifications", "tenant"),
    ("POST", "/v1/verifications/ver_x/check", "tenant"),
    ("POST", "/v1/verifications/ver_x/check", "nobody"),
    ("POST", "/v1/verifications/check", "tenant"),
    ("POST", "/admin/tenants", "admin"),
    ("PATCH", "/admin/tenants/{tenant}", "admin"),
]


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    return body


@pytest.fixture(scope="module")
def shared(service: Service) -> SharedTenant:
    """One tenant for the many cases here that only need its key and id, not a fresh one."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=service.url, headers=admin, timeout=15) as client:
        body = {"name": "Edge", "settings": DEFAULT_SETTINGS}
        tenant_id = client.post("/admin/tenants", json=body).json()["id"]
        key = client.post(f"/admin/tenants/{tenant_id}/api-keys").json()["key"]
    return SharedTenant(id=tenant_id, key=key)


@dataclass
class SharedTenant:
    id: str
    key: str


def _credentials(who: str, tenant: SharedTenant) -> dict[str, str]:
    token = {"tenant": tenant.key, "admin": ADMIN_TOKEN}.get(who)
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
@pytest.mark.parametrize(("method", "path", "who"), JSON_ROUTES)
async def test_a_body_that_is_not_json_is_400_without_a_traceback(
    anonymous: httpx.AsyncClient,
    shared: SharedTenant,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    who: str,
    body: bytes,
) -> None:
    """Invalid UTF-8, deep nesting or bad syntax: 400 malformed_json, and nothing in the log.

    These used to answer 500 and log a 28-line traceback each, for anyone, with no key.
    """
    headers = _credentials(who, shared) | {"Content-Type": "application/json"}
    response = await anonymous.request(
        method, path.format(tenant=shared.id), content=body, headers=headers
    )
    _problem(response, 400, "malformed_json")
    _no_traceback(caplog)


@pytest.mark.parametrize("body", NOT_JSON.values(), ids=NOT_JSON.keys())
async def test_a_signed_webhook_that_is_not_json_is_400_without_a_traceback(
    anonymous: httpx.AsyncClient,
    simulator: Simulator,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
) -> None:
    """A correctly signed Telnyx webhook whose body is not JSON is refused the same way."""
    response = await anonymous.post(
        "/webhooks/telnyx", content=body, headers=signed(simulator.seed, body)
    )
    _problem(response, 400, "malformed_json")
    _no_traceback(caplog)


REFUSED_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",  # what a browser's fetch() sends for a string body
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "application/jsonx",
    None,
]
ACCEPTED_TYPES = [
    "application/json",
    "Application/JSON; charset=utf-8",
    'application/json; charset="UTF-8"',
    "application/merge-patch+json",
]


def _valid_body(path: str) -> bytes:
    if path == "/v1/verifications":
        return b'{"phone_number": "%s"}' % fresh_number().encode()
    if path.endswith("/check") and "ver_" in path:
        return b'{"code": "123456"}'
    if path.endswith("/check"):
        return b'{"phone_number": "%s", "code": "123456"}' % fresh_number().encode()
    return b'{"name": "Renamed"}'


# Every refused type on the route where acting on the body costs most (an SMS), and the
# commonest mistakes on every route: one mechanism serves them all.
REFUSALS = [(JSON_ROUTES[0], content_type) for content_type in REFUSED_TYPES] + [
    (route, content_type) for route in JSON_ROUTES[1:] for content_type in ("text/plain", None)
]


@pytest.mark.parametrize(("route", "content_type"), REFUSALS)
async def test_a_body_not_declared_json_is_415(
    anonymous: httpx.AsyncClient,
    shared: SharedTenant,
    sim: httpx.AsyncClient,
    route: tuple[str, str, str],
    content_type: str | None,
) -> None:
    """A valid JSON body sent as text, XML, a form or with no type is refused, and not acted on.

    It used to be read as JSON whatever its type: a form post started a verification (201).
    """
    method, path, who = route
    headers = _credentials(who, shared)
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = _valid_body(path)
    response = await anonymous.request(
        method, path.format(tenant=shared.id), content=body, headers=headers
    )
    _problem(response, 415, "unsupported_media_type")
    if path == "/v1/verifications":
        assert await sent_codes(sim, body.decode().split('"')[3]) == []


@pytest.mark.parametrize("content_type", ACCEPTED_TYPES)
async def test_json_media_types_are_accepted(
    tenant: TenantHandle, admin: httpx.AsyncClient, content_type: str
) -> None:
    """``application/json`` (any case, UTF-8 charset) and ``application/*+json`` are JSON."""
    started = await tenant.client.post(
        "/v1/verifications",
        content=_valid_body("/v1/verifications"),
        headers={"Content-Type": content_type},
    )
    assert started.status_code == 201, started.text
    renamed = await admin.patch(
        f"/admin/tenants/{tenant.id}",
        content=b'{"name": "Renamed"}',
        headers={"Content-Type": content_type},
    )
    assert renamed.status_code == 200, renamed.text


WRONG_TYPES = {"a string": "6", "a float": 6.0, "a boolean": True}


@pytest.mark.parametrize("value", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
async def test_an_integer_must_be_an_integer(
    tenant: TenantHandle, admin: httpx.AsyncClient, sim: httpx.AsyncClient, value: object
) -> None:
    """``code_length`` given as "6", 6.0 or true is a 422 naming the field, everywhere.

    Starts and new tenants used to take "6" and 6.0 as 6 (Litestar converts leniently).
    """
    number = fresh_number()
    start = await tenant.client.post(
        "/v1/verifications", json={"phone_number": number, "code_length": value}
    )
    problem = _problem(start, 422, "validation_error")
    assert [e["field"] for e in problem["errors"]] == ["code_length"]
    assert await sent_codes(sim, number) == []
    for response in (
        await admin.post("/admin/tenants", json={"name": "T", "settings": {"code_length": value}}),
        await admin.patch(f"/admin/tenants/{tenant.id}", json={"settings": {"code_length": value}}),
    ):
        problem = _problem(response, 422, "validation_error")
        assert [e["field"] for e in problem["errors"]] == ["settings.code_length"]


async def test_a_string_field_takes_no_number(tenant: TenantHandle) -> None:
    """A code sent as a JSON number is refused like any other malformed code."""
    response = await tenant.client.post("/v1/verifications/ver_x/check", json={"code": 123456})
    _problem(response, 422, "invalid_code_format")


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/verifications", "OPTIONS, POST"),
        ("/v1/verifications/ver_x", "GET, OPTIONS"),
        ("/admin/tenants/{tenant}", "GET, OPTIONS, PATCH"),
        ("/admin/tenants/{tenant}/api-keys", "GET, OPTIONS, POST"),
        ("/admin/tenants/{tenant}/api-keys/key_x", "DELETE, OPTIONS"),
        ("/metrics", "GET, OPTIONS"),
    ],
)
async def test_options_and_405_name_every_method_of_the_path(
    admin: httpx.AsyncClient, tenant: TenantHandle, path: str, allowed: str
) -> None:
    """OPTIONS lists all the path's methods, and a 405 says them in ``Allow`` too.

    OPTIONS used to list only the methods of the path's first handler (no GET on a tenant),
    and 405 answers had no ``Allow`` header at all.
    """
    url = path.format(tenant=tenant.id)
    options = await admin.options(url)
    assert options.status_code == 204
    assert options.headers["allow"] == allowed
    refused = await admin.put(url, json={})
    _problem(refused, 405, "method_not_allowed")
    assert sorted(refused.headers["allow"].split(", ")) == allowed.split(", ")
