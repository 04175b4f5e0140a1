"""Operations: health, readiness, metrics, the OpenAPI document, and Redis being down."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from otp_service.__main__ import openapi_document
from otp_service.api import swagger
from tests.conftest import Service, TenantHandle, fresh_number

OPENAPI_FILE = Path(__file__).parent.parent / "openapi" / "openapi.json"


async def test_liveness_and_readiness_answer_200_when_redis_is_up(
    anonymous: httpx.AsyncClient,
) -> None:
    """/health/live and /health/ready both answer 200 with Redis reachable."""
    assert (await anonymous.get("/health/live")).status_code == 200
    assert (await anonymous.get("/health/ready")).status_code == 200


async def test_without_redis_the_service_is_live_but_not_ready(dead_redis_service: str) -> None:
    """With Redis down, live is 200, ready is 503, and API calls are 503, never 500."""
    async with httpx.AsyncClient(base_url=dead_redis_service, timeout=15) as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["code"] == "service_unavailable"
        start = await client.post(
            "/v1/verifications",
            json={"phone_number": fresh_number()},
            headers={"Authorization": "Bearer otpk_anything"},
        )
        assert start.status_code == 503
        assert start.headers["content-type"].startswith("application/problem+json")
        assert start.json()["code"] == "service_unavailable"


async def test_metrics_count_requests_sends_and_checks(
    tenant: TenantHandle, anonymous: httpx.AsyncClient
) -> None:
    """/metrics exposes request, send and check counters in Prometheus text format."""
    started = await tenant.client.post("/v1/verifications", json={"phone_number": fresh_number()})
    await tenant.client.post(f"/v1/verifications/{started.json()['id']}/check", json={"code": "0"})
    response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="POST",route="/v1/verifications",status="201"}' in text
    assert 'otp_sends_total{outcome="sent",sender_type="alphanumeric_sender_id"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert 'route="/v1/verifications/{verification_id}/check",status="422"' in text


async def test_the_committed_openapi_document_is_the_one_served(
    anonymous: httpx.AsyncClient,
) -> None:
    """openapi/openapi.json equals /schema/openapi.json (regenerate: otp-service openapi)."""
    served = (await anonymous.get("/schema/openapi.json")).json()
    assert json.loads(OPENAPI_FILE.read_text()) == served
    assert json.loads(openapi_document()) == served


ASSET_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


@pytest.mark.parametrize("page", ["/schema/swagger", "/schema"])
async def test_swagger_ui_loads_everything_from_the_service_itself(
    anonymous: httpx.AsyncClient, page: str
) -> None:
    """The Swagger page names no other host: its script, preset, styles and favicon are
    served by the service, are what the package ships, and are Swagger UI 5 (OpenAPI 3.1)."""
    response = await anonymous.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text.split("spec: ", 1)[0]  # the page's head, before the embedded document
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(assets) == 4, assets
    assert "validatorUrl: null" in response.text
    shipped = Path(swagger.__file__).with_name("swagger_ui")
    assert int((shipped / "VERSION").read_text().split(".")[0]) >= 5
    for asset in assets:
        assert asset.startswith("/schema/swagger-ui/"), asset
        served = await anonymous.get(asset)
        assert served.status_code == 200, asset
        content_type = ASSET_TYPES[Path(asset).suffix]
        assert served.headers["content-type"].startswith(content_type), served.headers
        assert served.content == (shipped / Path(asset).name).read_bytes()
    assert "https://" not in html
    assert "http://" not in html


async def test_the_openapi_document_documents_every_error_response(
    anonymous: httpx.AsyncClient,
) -> None:
    """Each tenant route documents its problem responses and the bearer security schemes."""
    document = (await anonymous.get("/schema/openapi.json")).json()
    start = document["paths"]["/v1/verifications"]["post"]
    for status in ("200", "201", "401", "403", "409", "422", "429", "502", "503"):
        assert status in start["responses"], status
    problem = start["responses"]["429"]["content"]
    assert "application/problem+json" in problem
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "AdminToken"}
    check = document["paths"]["/v1/verifications/{verification_id}/check"]["post"]
    assert {"404", "409", "422"} <= set(check["responses"])


E164 = r"^\+[1-9][0-9]{1,14}$"


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _body_schemas(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each operation's JSON request body schema, by ``METHOD path``."""
    return {
        f"{method.upper()} {path}": _resolve(
            document, operation["requestBody"]["content"]["application/json"]["schema"]
        )
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    }


async def test_request_bodies_are_documented_as_closed(anonymous: httpx.AsyncClient) -> None:
    """Every tenant and admin body says ``additionalProperties: false`` (unknown fields: 422).

    Litestar rendered structs without it, so the document invited fields the API refuses;
    nested objects (tenant settings, senders) are closed too, and limits such as metadata's
    ten pairs are stated.
    """
    document = (await anonymous.get("/schema/openapi.json")).json()
    bodies = _body_schemas(document)
    assert set(bodies) == {
        "POST /v1/verifications",
        "POST /v1/verifications/{verification_id}/check",
        "POST /v1/verifications/check",
        "POST /admin/tenants",
        "PATCH /admin/tenants/{tenant_id}",
        "POST /webhooks/telnyx",
    }
    for operation, schema in bodies.items():
        if operation != "POST /webhooks/telnyx":  # any signed JSON is taken (and ignored)
            assert schema["additionalProperties"] is False, operation
    components = document["components"]["schemas"]
    assert components["TenantSettings"]["additionalProperties"] is False
    assert components["Sender"]["additionalProperties"] is False
    assert components["StartVerificationBody"]["properties"]["metadata"]["maxProperties"] == 10


async def test_phone_numbers_are_documented_as_e164_and_still_judged_by_the_service(
    anonymous: httpx.AsyncClient, tenant: TenantHandle
) -> None:
    """Phone-number fields carry the E.164 pattern; a number that breaks it is still API.md's
    422 ``invalid_phone_number`` with the service's own detail, not a generic schema error.
    """
    document = (await anonymous.get("/schema/openapi.json")).json()
    components = document["components"]["schemas"]
    for body in ("StartVerificationBody", "CheckByPhoneBody"):
        assert components[body]["properties"]["phone_number"]["pattern"] == E164
    [parameter] = document["paths"]["/v1/opt-outs/{phone_number}"]["get"]["parameters"]
    assert parameter["schema"]["pattern"] == E164
    for number in ("447400123456", "+0447400123456", "+44 7400 123456", "+4474001234567890"):
        for response in (
            await tenant.client.post("/v1/verifications", json={"phone_number": number}),
            await tenant.client.post(
                "/v1/verifications/check", json={"phone_number": number, "code": "123456"}
            ),
        ):
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["code"] == "invalid_phone_number"
            assert problem["detail"].startswith("phone_number must be E.164"), problem


async def test_cross_field_rules_are_described(anonymous: httpx.AsyncClient) -> None:
    """The rules a schema cannot express are written in the descriptions users read."""
    document = (await anonymous.get("/schema/openapi.json")).json()
    components = document["components"]["schemas"]
    assert "messaging_profile_id" in components["Sender"]["description"]
    assert "allowed_countries" in components["TenantSettings"]["description"]
    assert "code_length" in components["CheckBody"]["properties"]["code"]["description"]
    patch = components["PatchTenantBody"]["properties"]["settings"]
    assert patch["allOf"] == [{"$ref": "#/components/schemas/TenantSettings"}]
    opt_outs = document["paths"]["/admin/opt-outs"]["get"]
    assert "exactly one" in opt_outs["description"]


async def test_every_documented_error_is_a_problem_document(
    anonymous: httpx.AsyncClient,
) -> None:
    """No operation documents an error in another shape than problem+json.

    Litestar added a 400 in its own JSON error shape to every route with a parameter, an
    answer the service never gives (an invalid parameter is a 422 problem).
    """
    document = (await anonymous.get("/schema/openapi.json")).json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )


async def test_metrics_are_documented_as_prometheus_text(anonymous: httpx.AsyncClient) -> None:
    """/metrics is documented as ``text/plain`` (it used to say JSON), as it is served."""
    document = (await anonymous.get("/schema/openapi.json")).json()
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
    served = await anonymous.get("/metrics")
    assert served.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_unknown_routes_and_methods_are_problem_documents(service: Service) -> None:
    """An unknown path is 404 and a wrong method 405, both as problem+json."""
    async with httpx.AsyncClient(base_url=service.url) as client:
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        wrong = await client.delete("/health/live")
        assert wrong.status_code == 405
        assert wrong.json()["code"] == "method_not_allowed"
