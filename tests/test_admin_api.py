"""The admin API over HTTP: tenants, their settings and their API keys."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from otp_service.app import create_app
from otp_service.devredis import PrivateRedis
from tests.conftest import (
    ADMIN_TOKEN,
    DEFAULT_SETTINGS,
    PROFILE_ID,
    MakeTenant,
    MovableClock,
    Service,
    Simulator,
    fresh_number,
    sent_codes,
    service_on,
    service_settings,
)
from tests.servers import serve

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check that ``response`` is an RFC 9457 problem with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["type"]
    assert "Traceback" not in response.text
    return body


def error_fields(body: dict[str, Any]) -> list[str]:
    """The ``field`` of each entry of a validation problem's ``errors``."""
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors
    return [str(entry["field"]) for entry in errors]


async def create_tenant(admin: httpx.AsyncClient, **settings: Any) -> dict[str, Any]:
    """Create a tenant with DEFAULT_SETTINGS plus ``settings`` and return its JSON."""
    body = {"name": "Admin test", "settings": DEFAULT_SETTINGS | settings}
    created = await admin.post("/admin/tenants", json=body)
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def issue_key(admin: httpx.AsyncClient, tenant_id: str) -> dict[str, Any]:
    """Issue an API key for the tenant and return the 201 body."""
    issued = await admin.post(f"/admin/tenants/{tenant_id}/api-keys")
    assert issued.status_code == 201, issued.text
    result: dict[str, Any] = issued.json()
    return result


async def probe(anonymous: httpx.AsyncClient, key: str) -> httpx.Response:
    """Use an API key on the tenant API (reading a verification that does not exist)."""
    return await anonymous.get(
        "/v1/verifications/ver_x", headers={"Authorization": f"Bearer {key}"}
    )


# --- tenants -------------------------------------------------------------------------------


async def test_a_new_tenant_gets_an_id_and_the_documented_defaults(
    admin: httpx.AsyncClient,
) -> None:
    """Creating a tenant answers 201 with a ``ten_`` id and every setting left out defaulted."""
    created = await admin.post("/admin/tenants", json={"name": "Defaults Ltd", "settings": {}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert re.fullmatch(r"ten_[a-z2-7]{26}", body["id"]), body["id"]
    assert body["name"] == "Defaults Ltd"
    settings = body["settings"]
    assert settings["code_length"] == 6
    assert settings["code_ttl_seconds"] == 600
    assert settings["max_check_attempts"] == 5
    assert settings["max_sends"] == 5
    assert settings["resend_cooldown_seconds"] == 30
    assert settings["allowed_countries"] == ["*"]
    assert settings["reject_landlines"] is True
    assert settings["delivery_timeout_seconds"] is None


async def test_a_tenant_keeps_the_settings_it_was_given(admin: httpx.AsyncClient) -> None:
    """Given settings are stored as given and read back unchanged with GET."""
    created = await create_tenant(admin, code_length=8, max_sends=3, allowed_countries=["GB"])
    read = await admin.get(f"/admin/tenants/{created['id']}")
    assert read.status_code == 200
    body = read.json()
    assert body == created
    assert body["settings"]["code_length"] == 8
    assert body["settings"]["max_sends"] == 3
    assert body["settings"]["allowed_countries"] == ["GB"]
    assert body["settings"]["senders"] == DEFAULT_SETTINGS["senders"]
    assert body["settings"]["messaging_profile_id"] == PROFILE_ID


async def test_an_unknown_tenant_is_404(admin: httpx.AsyncClient) -> None:
    """Reading a tenant that does not exist answers 404 ``tenant_not_found``."""
    response = await admin.get("/admin/tenants/ten_doesnotexist")
    assert_problem(response, 404, "tenant_not_found")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"code_length": 3}, "settings.code_length"),
        ({"code_length": 11}, "settings.code_length"),
        ({"code_ttl_seconds": 5}, "settings.code_ttl_seconds"),
        ({"max_check_attempts": 0}, "settings.max_check_attempts"),
        ({"resend_cooldown_seconds": 601}, "settings.resend_cooldown_seconds"),
        ({"favourite_colour": "blue"}, "settings"),
        (
            {"senders": {"US": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}},
            "settings.senders.US[0]",
        ),
        (
            {"senders": {"GB": [{"type": "alphanumeric_sender_id", "from": "AC"}]}},
            "settings.senders.GB[0]",
        ),
        ({"senders": {"US": [{"type": "short_code", "from": "1234"}]}}, "settings.senders.US[0]"),
        (
            {"messaging_profile_id": None, "senders": {"US": [{"type": "number_pool"}]}},
            "settings.senders.US[0]",
        ),
        ({"senders": {"gb": [{"type": "long_code", "from": "+447400123000"}]}}, "settings.senders"),
        ({"allowed_countries": ["*", "GB"]}, "settings.allowed_countries"),
    ],
)
async def test_invalid_settings_are_refused_naming_the_field(
    admin: httpx.AsyncClient, settings: dict[str, Any], field: str
) -> None:
    """Settings that break a rule answer 422 ``validation_error`` with an entry for the field."""
    body = {"name": "Invalid", "settings": DEFAULT_SETTINGS | settings}
    response = await admin.post("/admin/tenants", json=body)
    problem = assert_problem(response, 422, "validation_error")
    assert any(name.startswith(field) for name in error_fields(problem)), problem


async def test_a_tenant_needs_a_name(admin: httpx.AsyncClient) -> None:
    """A tenant without a name is a 422 naming ``name``."""
    response = await admin.post("/admin/tenants", json={"settings": {}})
    problem = assert_problem(response, 422, "validation_error")
    assert "name" in " ".join(error_fields(problem)) + problem["detail"]


async def test_unknown_top_level_fields_are_refused(admin: httpx.AsyncClient) -> None:
    """An unknown field next to ``name`` and ``settings`` is a 422, not silently ignored."""
    response = await admin.post("/admin/tenants", json={"name": "X", "plan": "gold"})
    assert_problem(response, 422, "validation_error")


async def test_patch_changes_only_the_given_fields(admin: httpx.AsyncClient) -> None:
    """PATCH changes the settings it names and leaves every other setting as it was."""
    created = await create_tenant(admin, max_sends=4, brand="Before")
    patched = await admin.patch(
        f"/admin/tenants/{created['id']}", json={"settings": {"code_length": 8, "brand": "After"}}
    )
    assert patched.status_code == 200, patched.text
    settings = patched.json()["settings"]
    assert settings["code_length"] == 8
    assert settings["brand"] == "After"
    assert settings["max_sends"] == 4
    assert settings["senders"] == DEFAULT_SETTINGS["senders"]
    assert settings["messaging_profile_id"] == PROFILE_ID
    read = (await admin.get(f"/admin/tenants/{created['id']}")).json()
    assert read["settings"] == settings
    assert read["name"] == created["name"]
    assert read["created_at"] == created["created_at"]


@pytest.mark.parametrize(
    "changes",
    [
        {"code_length": 99},
        {"unknown_setting": 1},
        {"messaging_profile_id": None},  # GB's alphanumeric sender then lacks a profile
        {"senders": {"US": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}},
        {"allowed_countries": ["*", "FR"]},
    ],
)
async def test_an_invalid_patch_changes_nothing(
    admin: httpx.AsyncClient, changes: dict[str, Any]
) -> None:
    """A PATCH whose merged settings are invalid is a 422 and the tenant stays as it was."""
    created = await create_tenant(admin)
    response = await admin.patch(
        f"/admin/tenants/{created['id']}", json={"settings": {"brand": "Changed"} | changes}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert error_fields(problem)
    read = await admin.get(f"/admin/tenants/{created['id']}")
    assert read.json() == created


async def test_an_invalid_patch_names_the_field(admin: httpx.AsyncClient) -> None:
    """A PATCH with an out-of-range value names that field in ``errors``, as a create does."""
    created = await create_tenant(admin)
    response = await admin.patch(
        f"/admin/tenants/{created['id']}", json={"settings": {"code_length": 99}}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert "settings.code_length" in error_fields(problem)


EVERY_KIND_OF_BAD = {
    "code_length": 99,
    "max_sends": "5",
    "favourite_colour": "blue",
    "allowed_countries": ["GB", "france"],
    "senders": {"GB": [{"type": "long_code", "from": 447400123000}], "gb": []},
    "limits": {"tenant": {"max": 0, "interval_seconds": 60}},
}
"""Seven problems in six settings: a range, a type, an unknown field, a list item, a nested
struct's field, and a dict's key and a value inside it."""

EVERY_BAD_FIELD = [
    ("settings.code_length", "<= 10"),
    ("settings.max_sends", "Expected `int`, got `str`"),
    ("settings", "unknown field `favourite_colour`"),
    ("settings.allowed_countries[1]", "regex"),
    ("settings.senders.GB[0].from", "Expected `str | null`, got `int`"),
    ("settings.senders", "got `gb`"),
    ("settings.limits.tenant.max", ">= 1"),
]


def assert_every_bad_field(problem: dict[str, Any]) -> None:
    listed = [(entry["field"], entry["message"]) for entry in problem["errors"]]
    for field, words in EVERY_BAD_FIELD:
        assert any(f == field and words in m for f, m in listed), (field, listed)
    assert len(listed) == len(EVERY_BAD_FIELD), listed


async def test_a_create_lists_every_bad_setting_at_once(admin: httpx.AsyncClient) -> None:
    """Seven bad settings are seven ``errors`` entries of one 422, each naming its field."""
    response = await admin.post(
        "/admin/tenants", json={"name": "Broken", "settings": EVERY_KIND_OF_BAD}
    )
    problem = assert_problem(response, 422, "validation_error")
    assert_every_bad_field(problem)
    assert problem["detail"] == "settings.code_length: Expected `int` <= 10"


async def test_a_patch_lists_every_bad_setting_at_once(admin: httpx.AsyncClient) -> None:
    """A PATCH names every bad field of its changes too, and changes nothing."""
    created = await create_tenant(admin)
    response = await admin.patch(
        f"/admin/tenants/{created['id']}", json={"settings": EVERY_KIND_OF_BAD}
    )
    assert_every_bad_field(assert_problem(response, 422, "validation_error"))
    assert (await admin.get(f"/admin/tenants/{created['id']}")).json() == created


async def test_a_missing_name_and_bad_settings_are_listed_together(
    admin: httpx.AsyncClient,
) -> None:
    """The body's own fields and the settings' are checked in the same pass."""
    response = await admin.post("/admin/tenants", json={"settings": {"code_ttl_seconds": 1}})
    problem = assert_problem(response, 422, "validation_error")
    assert sorted(error_fields(problem)) == ["body", "settings.code_ttl_seconds"]


async def test_a_pending_verification_keeps_the_code_length_it_started_with(
    make_tenant: MakeTenant,
    admin: httpx.AsyncClient,
    sim: httpx.AsyncClient,
    clock: MovableClock,
) -> None:
    """As the README's "When a settings change takes effect" says: after a PATCH to 8 digits,
    a resend of a pending verification still sends 6, while a new one sends 8."""
    tenant = await make_tenant(code_length=6)
    pending, fresh = fresh_number(), fresh_number()
    started = await tenant.client.post("/v1/verifications", json={"phone_number": pending})
    assert started.status_code == 201, started.text
    patched = await admin.patch(
        f"/admin/tenants/{tenant.id}", json={"settings": {"code_length": 8}}
    )
    assert patched.status_code == 200, patched.text
    clock.advance(31)  # past the resend cooldown
    resent = await tenant.client.post("/v1/verifications", json={"phone_number": pending})
    assert resent.status_code == 200, resent.text
    assert [len(code) for code in await sent_codes(sim, pending)] == [6, 6]
    new = await tenant.client.post("/v1/verifications", json={"phone_number": fresh})
    assert new.status_code == 201, new.text
    assert [len(code) for code in await sent_codes(sim, fresh)] == [8]


async def test_patching_an_unknown_tenant_is_404(admin: httpx.AsyncClient) -> None:
    """PATCH of a tenant that does not exist answers 404 ``tenant_not_found``."""
    response = await admin.patch(
        "/admin/tenants/ten_doesnotexist", json={"settings": {"code_length": 8}}
    )
    assert_problem(response, 404, "tenant_not_found")


# --- API keys ------------------------------------------------------------------------------


async def test_a_new_key_is_shown_once_and_authenticates(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """Issuing a key answers 201 with id, key and time; the key then works on the tenant API."""
    tenant = await create_tenant(admin)
    issued = await issue_key(admin, tenant["id"])
    assert re.fullmatch(r"key_[a-z2-7]{26}", issued["id"]), issued
    assert isinstance(issued["key"], str)
    assert len(issued["key"]) >= 32
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", issued["created_at"])
    used = await probe(anonymous, issued["key"])
    assert_problem(used, 404, "verification_not_found")


async def test_listing_keys_never_shows_a_secret(admin: httpx.AsyncClient) -> None:
    """The key list shows id, prefix and creation time of each key, never the key itself."""
    tenant = await create_tenant(admin)
    first = await issue_key(admin, tenant["id"])
    second = await issue_key(admin, tenant["id"])
    listed = await admin.get(f"/admin/tenants/{tenant['id']}/api-keys")
    assert listed.status_code == 200
    entries = listed.json()
    assert {entry["id"] for entry in entries} == {first["id"], second["id"]}
    for entry in entries:
        assert {"id", "prefix", "created_at"} <= set(entry)
        assert "key" not in entry
        issued = first if entry["id"] == first["id"] else second
        assert issued["key"].startswith(entry["prefix"])
        assert len(entry["prefix"]) < len(issued["key"]) // 2
    assert first["key"] not in listed.text
    assert second["key"] not in listed.text


async def test_keys_of_an_unknown_tenant_are_404(admin: httpx.AsyncClient) -> None:
    """Issuing or listing keys for a tenant that does not exist answers 404."""
    assert_problem(await admin.post("/admin/tenants/ten_nope/api-keys"), 404, "tenant_not_found")
    assert_problem(await admin.get("/admin/tenants/ten_nope/api-keys"), 404, "tenant_not_found")


async def test_a_revoked_key_stops_working_at_once_and_others_keep_working(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    """With two keys both work; revoking one makes it 401 at once while the other still works."""
    tenant = await create_tenant(admin)
    old = await issue_key(admin, tenant["id"])
    new = await issue_key(admin, tenant["id"])
    assert (await probe(anonymous, old["key"])).status_code == 404
    assert (await probe(anonymous, new["key"])).status_code == 404

    revoked = await admin.delete(f"/admin/tenants/{tenant['id']}/api-keys/{old['id']}")
    assert revoked.status_code == 204
    assert revoked.content == b""
    assert_problem(await probe(anonymous, old["key"]), 401, "unauthorized")
    assert_problem(await probe(anonymous, new["key"]), 404, "verification_not_found")
    listed = (await admin.get(f"/admin/tenants/{tenant['id']}/api-keys")).json()
    assert [entry["id"] for entry in listed] == [new["id"]]

    again = await admin.delete(f"/admin/tenants/{tenant['id']}/api-keys/{old['id']}")
    assert_problem(again, 404, "api_key_not_found")


async def test_revoking_an_unknown_key_is_404(admin: httpx.AsyncClient) -> None:
    """Revoking a key id the tenant does not have answers 404 ``api_key_not_found``."""
    tenant = await create_tenant(admin)
    response = await admin.delete(f"/admin/tenants/{tenant['id']}/api-keys/key_doesnotexist")
    assert_problem(response, 404, "api_key_not_found")


async def test_another_tenants_key_cannot_be_revoked_through_this_tenant(
    admin: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """Revoking tenant B's key id under tenant A is a 404 and B's key keeps working."""
    a = await make_tenant()
    b = await make_tenant()
    [b_key] = (await admin.get(f"/admin/tenants/{b.id}/api-keys")).json()
    response = await admin.delete(f"/admin/tenants/{a.id}/api-keys/{b_key['id']}")
    assert_problem(response, 404, "api_key_not_found")
    still = await b.client.get("/v1/verifications/ver_x")
    assert_problem(still, 404, "verification_not_found")


# --- admin authentication and request errors ----------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-admin-token-0000000", f"Basic {ADMIN_TOKEN}", "Bearer", ADMIN_TOKEN],
)
async def test_admin_endpoints_need_the_admin_token(
    anonymous: httpx.AsyncClient, authorization: str | None
) -> None:
    """Without the admin token (missing, wrong, wrong scheme) admin endpoints answer 401."""
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("POST", "/admin/tenants"),
        ("GET", "/admin/tenants/ten_x"),
        ("GET", "/admin/tenants/ten_x/api-keys"),
        ("DELETE", "/admin/tenants/ten_x/api-keys/key_x"),
    ]:
        body = {"name": "X"} if method == "POST" else None
        response = await anonymous.request(method, path, headers=headers, json=body)
        assert_problem(response, 401, "unauthorized")


async def test_a_tenant_key_is_not_an_admin_token(
    anonymous: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    """A tenant's API key cannot create tenants or read its own tenant record."""
    tenant = await make_tenant()
    headers = {"Authorization": f"Bearer {tenant.key}"}
    created = await anonymous.post("/admin/tenants", json={"name": "X"}, headers=headers)
    assert_problem(created, 401, "unauthorized")
    read = await anonymous.get(f"/admin/tenants/{tenant.id}", headers=headers)
    assert_problem(read, 401, "unauthorized")
    keys = await anonymous.post(f"/admin/tenants/{tenant.id}/api-keys", headers=headers)
    assert_problem(keys, 401, "unauthorized")


MALFORMED = [
    b'{"name": "X", "settings": {',
    b"not json at all",
    b'{"name": "X",}',
    b"{'name': 'X'}",
]


@pytest.mark.parametrize("content", MALFORMED)
async def test_malformed_json_is_400(admin: httpx.AsyncClient, content: bytes) -> None:
    """A body that is not JSON answers 400 as a problem document with a code, never a 500."""
    response = await admin.post(
        "/admin/tenants", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 400
    assert isinstance(body["code"], str)
    assert body["code"]


@pytest.mark.parametrize("content", MALFORMED[:1])
async def test_truncated_json_has_the_malformed_json_code(
    admin: httpx.AsyncClient, content: bytes
) -> None:
    """A truncated JSON body gets the same documented code, ``malformed_json``, as any other."""
    response = await admin.post(
        "/admin/tenants", content=content, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


async def test_an_oversized_body_is_413(admin: httpx.AsyncClient, service: Service) -> None:
    """A body over the 16 KiB limit answers 413 as a problem document."""
    assert service.settings.max_body_bytes == 16384
    body = {"name": "X", "settings": {"brand": "A" * 17_000}}
    response = await admin.post("/admin/tenants", json=body)
    assert_problem(response, 413, "payload_too_large")


async def test_an_events_webhook_url_to_an_internal_address_is_refused(
    redis_url: str, simulator: Simulator
) -> None:
    """Without OTP_ALLOW_PRIVATE_WEBHOOKS, event URLs must be https and not point inside."""
    settings = service_settings(redis_url, simulator, OTP_ALLOW_PRIVATE_WEBHOOKS="0")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with serve(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            for target, reason in (
                ("http://93.184.215.14/otp", "https"),
                ("https://127.0.0.1/otp", "loopback"),
                ("https://169.254.169.254/latest", "loopback"),
                ("https://localhost/otp", "loopback"),
                ("https://[64:ff9b::7f00:1]/otp", "loopback"),  # NAT64
                ("https://[64:ff9b::a9fe:a9fe]/latest", "loopback"),  # NAT64 to metadata
                ("https://[2002:7f00:1::]/otp", "loopback"),  # 6to4
                ("https://[::127.0.0.1]/otp", "loopback"),  # IPv4-compatible
                ("https://[::ffff:127.0.0.1]/otp", "loopback"),  # IPv4-mapped
                ("https://2130706433/otp", "host"),  # decimal
                ("https://0177.0.0.1/otp", "host"),  # octal
                ("https://0x7f.0.0.1/otp", "host"),  # hex
                ("https://127.1/otp", "host"),  # short form
            ):
                response = await client.post(
                    "/admin/tenants",
                    json={"name": "T", "settings": {"events_webhook_url": target}},
                )
                assert response.status_code == 422, target
                [error] = response.json()["errors"]
                assert error["field"] == "settings.events_webhook_url"
                assert reason in error["message"]
            public = await client.post(
                "/admin/tenants",
                json={"name": "T", "settings": {"events_webhook_url": "https://93.184.215.14/x"}},
            )
            assert public.status_code == 201, public.text
            tenant_id = public.json()["id"]
            nat64 = await client.patch(
                f"/admin/tenants/{tenant_id}",
                json={"settings": {"events_webhook_url": "https://[64:ff9b::a9fe:a9fe]/"}},
            )
            assert nat64.status_code == 422, nat64.text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.acme.example/otp\r\n", "control characters"),
        ("https://hooks.acme.example/o tp", "spaces"),
        ("https://bücher.example/otp", "xn--"),
        ("https://hooks.acme.example:0/otp", "port"),
        ("https://hooks.acme.example:70000/otp", "port"),
        ("https://hooks_acme.example/otp", "host"),
        ("https://2130706433/otp", "host"),
        ("https://hooks.acme.example/" + "a" * 2040, "2048"),
    ],
)
async def test_a_malformed_events_webhook_url_is_refused_when_written(
    admin: httpx.AsyncClient, url: str, reason: str
) -> None:
    """The URLs that later broke the event poster (a trailing CR LF, an IDN host) are 422,
    on create and on change, even where private webhooks are allowed."""
    created = await admin.post(
        "/admin/tenants", json={"name": "T", "settings": {"events_webhook_url": url}}
    )
    body = assert_problem(created, 422, "validation_error")
    assert error_fields(body) == ["settings.events_webhook_url"]
    assert reason in body["errors"][0]["message"]
    tenant = await create_tenant(admin)
    changed = await admin.patch(
        f"/admin/tenants/{tenant['id']}", json={"settings": {"events_webhook_url": url}}
    )
    body = assert_problem(changed, 422, "validation_error")
    assert error_fields(body) == ["settings.events_webhook_url"]
    unchanged = await admin.get(f"/admin/tenants/{tenant['id']}")
    assert unchanged.json()["settings"]["events_webhook_url"] is None


async def test_an_idn_host_in_punycode_and_credentials_are_accepted(
    admin: httpx.AsyncClient,
) -> None:
    """An internationalised name is written in its xn-- form; credentials may be given."""
    url = "https://hook-user:s3cret@xn--bcher-kva.example:8443/otp?token=x"
    tenant = await create_tenant(admin, events_webhook_url=url)
    assert tenant["settings"]["events_webhook_url"] == url


# --- Listing tenants -----------------------------------------------------------------------


async def test_tenants_are_listed_oldest_first_a_page_at_a_time(simulator: Simulator) -> None:
    """On a Redis of its own, five tenants come back in creation order, two per page, each
    exactly as ``GET /admin/tenants/{id}`` shows it; the last page has no cursor."""
    with PrivateRedis() as redis, service_on(redis.url, simulator, OTP_RUN_WORKERS="0") as url:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as client:
            empty = await client.get("/admin/tenants")
            assert empty.status_code == 200, empty.text
            assert empty.json() == {"data": [], "next_cursor": None}
            created = [await create_tenant(client, brand=f"Brand {n}") for n in range(5)]
            pages: list[list[dict[str, Any]]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
                page = await client.get("/admin/tenants", params=params)
                assert page.status_code == 200, page.text
                pages.append(page.json()["data"])
                cursor = page.json()["next_cursor"]
                if cursor is None:
                    break
            assert [len(page) for page in pages] == [2, 2, 1]
            listed = [tenant for page in pages for tenant in page]
            # each as the create answered it (GET's shape); two made in one ms go by id
            assert listed == sorted(created, key=lambda t: (t["created_at"], t["id"]))


@pytest.mark.parametrize("cursor", ["nope", "KzQ0NzQwMDEyMzQ1Ng", "MDAwMDAwMDAwMDAwMDAwOiJ0ZW4"])
async def test_a_cursor_not_given_out_is_422(admin: httpx.AsyncClient, cursor: str) -> None:
    """A made-up cursor (an opt-out list's among them) is a 422 naming ``cursor``."""
    response = await admin.get("/admin/tenants", params={"cursor": cursor})
    problem = assert_problem(response, 422, "validation_error")
    assert error_fields(problem) == ["cursor"]


async def test_listing_tenants_needs_the_admin_token(anonymous: httpx.AsyncClient) -> None:
    """Without the admin token the list is 401, like every admin route."""
    response = await anonymous.get("/admin/tenants")
    assert_problem(response, 401, "unauthorized")
