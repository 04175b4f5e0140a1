"""Contract fuzzing: schemathesis drives the live service from the OpenAPI document it serves.

Every documented operation (tenant, admin, webhook and operations routes) gets schemathesis's
coverage phase (boundary values, missing and malformed parts, other methods, other media
types) and a fuzzing phase of ``MAX_EXAMPLES`` positive and negative examples, against a
service of its own over real HTTP (a private Redis, the Telnyx simulator). Tenant routes are
called with a tenant's key and admin routes with the admin token; schemathesis also calls
them without (``ignored_auth``). Half the positive examples use real ids and valid phone
numbers, so that 2xx answers are checked too, not only 404s and 422s. Each
webhook example is sent as generated (unsigned or wrongly signed: 401) and again correctly
signed over the exact bytes sent.

Checks: every schemathesis check (no 5xx, documented status, content type, headers and body
schema, negative data refused, unsupported methods 405 with ``Allow``, auth not ignored...)
plus ``problem_documents``: every error is an RFC 9457 problem with the service's members.
The one check narrowed is ``positive_data_acceptance``: schema-valid data may still be a 422,
for what a schema cannot say (libphonenumber's validity, the settings rules across fields,
a code of the wrong length for its verification); it must never be a 400 or a 415.

The seed is fixed, so a run is repeatable; the totals are printed in the terminal summary
(``schemathesis: N operations, M examples, F failures``).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from nacl.signing import SigningKey

from otp_service.__main__ import openapi_document
from otp_service.devredis import PrivateRedis
from tests.conftest import (
    ADMIN_TOKEN,
    DEFAULT_SETTINGS,
    SUMMARY,
    Simulator,
    fresh_number,
    service_on,
)

MAX_EXAMPLES = 200
"""Fuzzing examples per operation and mode; tuned to keep the whole run near a minute."""

WEBHOOK = "/webhooks/telnyx"
PROBLEM_MEMBERS = {"type", "title", "status", "detail", "code"}

schema = schemathesis.openapi.from_dict(
    json.loads(openapi_document()),
    config=schemathesis.Config.from_str(
        f"""
seed = 7
[generation]
max-examples = {MAX_EXAMPLES}
mode = "all"
database = "none"
[phases.stateful]
enabled = false  # the document declares no links between operations
[checks.positive_data_acceptance]
expected-statuses = ["2xx", 401, 403, 404, 409, 422, 429]
"""
    ),
)

target: dict[str, Any] = {}
"""The fuzzed service: its URL and the real ids and credentials the examples use."""

examples: Counter[str] = Counter()
failures: list[str] = []


@schema.auth()
class Credentials:
    """The tenant's key on ``/v1``, the admin token on ``/admin``, nothing elsewhere."""

    def get(self, case: Any, context: Any) -> str | None:  # noqa: ARG002  (the protocol's)
        path: str = context.operation.path
        if path.startswith("/admin/"):
            return ADMIN_TOKEN
        if path.startswith("/v1/"):
            key: str = target["tenant_key"]
            return key
        return None

    def set(self, case: Any, data: str | None, context: Any) -> None:  # noqa: ARG002
        if data is not None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
def fuzzed_service(simulator: Simulator) -> Iterator[str]:
    """A service on a Redis of its own, with a tenant to call and a tenant to administer."""
    with PrivateRedis() as redis, service_on(redis.url, simulator) as url:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=url, headers=admin, timeout=15) as client:
            body = {"name": "Fuzzed", "settings": DEFAULT_SETTINGS}
            caller = client.post("/admin/tenants", json=body).json()["id"]
            administered = client.post("/admin/tenants", json=body).json()["id"]
            key = client.post(f"/admin/tenants/{caller}/api-keys").json()["key"]
            key_ids = [
                client.post(f"/admin/tenants/{administered}/api-keys").json()["id"]
                for _ in range(3)
            ]
            number = fresh_number()
            verification = client.post(
                "/v1/verifications",
                json={"phone_number": number},
                headers={"Authorization": f"Bearer {key}"},
            ).json()["id"]
        target.update(
            url=url,
            tenant_key=key,
            seed=simulator.seed,
            ids={"tenant_id": administered, "verification_id": verification},
            key_ids=key_ids,
            number=number,
        )
        yield url
    SUMMARY.append(
        f"schemathesis: {len(examples)} operations, {examples.total()} examples, "
        f"{len(failures)} failures"
    )


def problem_documents(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx is an RFC 9457 problem whose ``status`` is the HTTP status."""
    if response.status_code < 400:
        return None
    [content_type] = response.headers.get("content-type", [""])
    assert content_type.startswith("application/problem+json"), content_type
    problem = response.json()
    assert set(problem) >= PROBLEM_MEMBERS, problem
    assert problem["status"] == response.status_code, problem
    assert isinstance(problem["code"], str), problem
    assert problem["code"], problem
    return True


CONTENT_TYPE_PROBES = {"malformed_content_type", "unsupported_content_type"}


def json_bodies_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """A body sent as anything but JSON is a 415 (schemathesis only asks for no 5xx).

    The Telnyx webhook is left out: a signed body is read whatever its declared type.
    """
    meta = case.meta
    scenario = getattr(meta.phase.data, "scenario", None) if meta is not None else None
    if scenario not in CONTENT_TYPE_PROBES or not case.operation.body:
        return None
    if case.operation.path == WEBHOOK:
        return None
    sent = response.request.headers.get("content-type")
    assert response.status_code == 415, f"{response.status_code} for Content-Type {sent!r}"
    return True


def _use_real_values(case: Any) -> None:
    """Every other positive example uses real ids and valid numbers, so 2xx answers are
    checked too: random ids are 404s and random E.164 strings are rarely valid numbers.
    """
    label = case.operation.label
    if case.meta is None or case.meta.generation.mode != "positive" or examples[label] % 2:
        return
    real: dict[str, str] = target["ids"]
    path = case.path_parameters or {}
    for name in set(path) & set(real):
        path[name] = real[name]
    if "key_id" in path:
        path["key_id"] = target["key_ids"][examples[label] // 2 % len(target["key_ids"])]
    if "phone_number" in path:
        path["phone_number"] = fresh_number()
    if "tenant_id" in (case.query or {}):
        case.query["tenant_id"] = real["tenant_id"]
        case.query.pop("messaging_profile_id", None)
    if isinstance(case.body, dict) and "phone_number" in case.body:
        # A start gets a new number; a check the number of the pending verification.
        case.body["phone_number"] = target["number"] if "code" in case.body else fresh_number()
    if isinstance(case.body, dict) and "code" in case.body:
        case.body["code"] = f"{examples[label]:06d}"


def _call_signed(case: Any, url: str) -> requests.Response:
    """Send a webhook example as Telnyx would: signed over exactly the bytes sent."""
    request = case.as_transport_kwargs(base_url=url)
    body = request.pop("data", b"")
    if "json" in request:
        body = json.dumps(request.pop("json")).encode()
    elif isinstance(body, str):
        body = body.encode()
    stamp = str(int(time.time()))
    signature = SigningKey(target["seed"]).sign(f"{stamp}|".encode() + body).signature
    request["headers"].update(
        {
            "telnyx-timestamp": stamp,
            "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        }
    )
    return requests.request(**request, data=body, timeout=15)


CHECKS = [problem_documents, json_bodies_only]


@schema.parametrize()
def test_the_service_keeps_its_contract(case: Any, fuzzed_service: str) -> None:
    """Each answer is documented, well-formed and never a 5xx (see the module docstring)."""
    _use_real_values(case)
    examples[case.operation.label] += 1
    try:
        case.call_and_validate(base_url=fuzzed_service, additional_checks=CHECKS)
        if case.operation.path == WEBHOOK:
            examples[case.operation.label] += 1
            signed = _call_signed(case, fuzzed_service)
            case.validate_response(signed, additional_checks=CHECKS)
    except BaseException:
        failures.append(case.operation.label)
        raise
