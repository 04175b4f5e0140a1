"""The ``otp-service`` command's tenant and key administration, run as a real subprocess.

The CLI talks to the same private Redis, with the same ``OTP_SECRET_KEY``, as the service
fixture, so what it creates must be visible and usable over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import (
    DEFAULT_SETTINGS,
    MakeTenant,
    Service,
    Simulator,
    service_environ,
)

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """The outcome of one CLI run."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The JSON the command printed."""
        return json.loads(self.stdout)


@pytest.fixture
def cli_env(redis_url: str, simulator: Simulator, service: Service) -> dict[str, str]:
    """The environment of an operator pointing the CLI at the service's Redis."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        **service_environ(redis_url, simulator),
        "OTP_LOG_LEVEL": "WARNING",
    }


async def otp_service(env: dict[str, str], *args: str, stdin: bytes = b"") -> Run:
    """Run ``otp-service ARGS`` (as ``python -m otp_service``) on ``stdin``; collect its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "otp_service",
        *args,
        env=env,
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def assert_clean_failure(run: Run, *mentions: str) -> None:
    """A failed run exits non-zero with one line on stderr, no traceback, naming ``mentions``."""
    assert run.returncode != 0, run
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    for mention in mentions:
        assert mention in lines[0], lines[0]


async def test_tenants_create_prints_the_tenant_and_show_reads_it(
    cli_env: dict[str, str], admin: httpx.AsyncClient
) -> None:
    """``tenants create`` prints the new tenant as JSON; ``tenants show`` and the API agree."""
    settings = DEFAULT_SETTINGS | {"code_length": 8}
    created = await otp_service(
        cli_env, "tenants", "create", "CLI Corp", "--settings", json.dumps(settings)
    )
    assert created.returncode == 0, created.stderr
    tenant = created.json()
    assert tenant["id"].startswith("ten_")
    assert tenant["name"] == "CLI Corp"
    assert tenant["settings"]["code_length"] == 8
    assert tenant["settings"]["max_sends"] == 5
    assert tenant["settings"]["senders"] == DEFAULT_SETTINGS["senders"]

    shown = await otp_service(cli_env, "tenants", "show", tenant["id"])
    assert shown.returncode == 0, shown.stderr
    assert shown.json() == tenant
    over_http = await admin.get(f"/admin/tenants/{tenant['id']}")
    assert over_http.status_code == 200
    assert over_http.json() == tenant


async def test_tenants_list_shows_every_tenant_once_oldest_first(
    cli_env: dict[str, str], admin: httpx.AsyncClient
) -> None:
    """``tenants list`` walks every page: tenants made over HTTP are there, once, in order."""
    made = []
    for name in ("First listed", "Second listed"):
        response = await admin.post("/admin/tenants", json={"name": name})
        assert response.status_code == 201, response.text
        made.append(response.json())
    listed = await otp_service(cli_env, "tenants", "list")
    assert listed.returncode == 0, listed.stderr
    tenants = listed.json()
    ids = [tenant["id"] for tenant in tenants]
    assert len(ids) == len(set(ids))
    ours = [tenant for tenant in tenants if tenant["id"] in {t["id"] for t in made}]
    assert ours == sorted(made, key=lambda t: (t["created_at"], t["id"]))


async def test_tenants_reindex_lists_tenants_from_before_the_list(
    cli_env: dict[str, str], admin: httpx.AsyncClient, redis: Redis
) -> None:
    """A tenant missing from the admin's index (made before it existed) is listed again after
    ``tenants reindex``, once."""
    made = (await admin.post("/admin/tenants", json={"name": "Older"})).json()
    index = await redis.zrangebylex("otp:{admin}:tenants", "-", "+")
    [member] = [m for m in index if str(m).endswith(made["id"])]
    await redis.zrem("otp:{admin}:tenants", member)
    before = await otp_service(cli_env, "tenants", "list")
    assert made["id"] not in {tenant["id"] for tenant in before.json()}

    reindexed = await otp_service(cli_env, "tenants", "reindex")
    assert reindexed.returncode == 0, reindexed.stderr
    assert reindexed.stdout.endswith(" tenants listed\n")
    after = [t["id"] for t in (await otp_service(cli_env, "tenants", "list")).json()]
    assert after.count(made["id"]) == 1
    assert len(after) == len(set(after))


async def test_showing_an_unknown_tenant_fails_cleanly(cli_env: dict[str, str]) -> None:
    """``tenants show`` of a tenant that does not exist exits non-zero with one clear line."""
    run = await otp_service(cli_env, "tenants", "show", "ten_doesnotexist")
    assert_clean_failure(run, "tenant")
    assert run.stdout == ""


async def test_a_key_from_the_cli_works_over_http_until_revoked(
    cli_env: dict[str, str],
    admin: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    make_tenant: MakeTenant,
) -> None:
    """A key issued by ``keys create`` authenticates over HTTP, is listed without its secret,
    and ``keys revoke`` makes it 401 at once."""
    tenant = await make_tenant()
    issued = await otp_service(cli_env, "keys", "create", tenant.id)
    assert issued.returncode == 0, issued.stderr
    record = issued.json()
    key = record["key"]
    assert record["id"].startswith("key_")
    headers = {"Authorization": f"Bearer {key}"}
    used = await anonymous.get("/v1/verifications/ver_x", headers=headers)
    assert used.status_code == 404, used.text
    assert used.json()["code"] == "verification_not_found"

    listed = await otp_service(cli_env, "keys", "list", tenant.id)
    assert listed.returncode == 0, listed.stderr
    entries = listed.json()
    assert record["id"] in {entry["id"] for entry in entries}
    assert len(entries) == 2  # the fixture's key and the CLI's
    assert key not in listed.stdout
    assert tenant.key not in listed.stdout
    assert all("key" not in entry for entry in entries)
    over_http = (await admin.get(f"/admin/tenants/{tenant.id}/api-keys")).json()
    assert {entry["id"] for entry in over_http} == {entry["id"] for entry in entries}

    revoked = await otp_service(cli_env, "keys", "revoke", tenant.id, record["id"])
    assert revoked.returncode == 0, revoked.stderr
    refused = await anonymous.get("/v1/verifications/ver_x", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    still = await tenant.client.get("/v1/verifications/ver_x")
    assert still.status_code == 404


async def test_a_missing_or_short_secret_key_stops_the_cli_with_one_line(
    cli_env: dict[str, str],
) -> None:
    """A missing or too-short OTP_SECRET_KEY exits non-zero with one line naming it, unechoed."""
    missing = {k: v for k, v in cli_env.items() if k != "OTP_SECRET_KEY"}
    short = cli_env | {"OTP_SECRET_KEY": "tooshort-secret-value"}
    runs = await asyncio.gather(
        otp_service(missing, "tenants", "show", "ten_x"),
        otp_service(short, "tenants", "show", "ten_x"),
    )
    for run in runs:
        assert_clean_failure(run, "OTP_SECRET_KEY")
        assert run.stdout == ""
    assert "tooshort-secret-value" not in runs[1].stderr


INVALID_SETTINGS = [
    '{"code_length": 99}',
    '{"favourite_colour": "blue"}',
    "[]",
    json.dumps({"senders": {"US": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}}),
]


async def test_invalid_settings_stop_tenants_create_cleanly(cli_env: dict[str, str]) -> None:
    """Out-of-range, unknown or rule-breaking settings exit non-zero with one line, no traceback."""
    runs = await asyncio.gather(
        *(
            otp_service(cli_env, "tenants", "create", "Broken", "--settings", settings)
            for settings in INVALID_SETTINGS
        )
    )
    for run in runs:
        assert_clean_failure(run)
        assert run.stdout == ""
    assert "code_length" in runs[0].stderr
    assert "favourite_colour" in runs[1].stderr


async def test_tenants_create_names_every_bad_setting_on_its_line(
    cli_env: dict[str, str],
) -> None:
    """Two bad settings are both named in the one line the CLI prints."""
    settings = json.dumps({"code_length": 99, "favourite_colour": "blue"})
    run = await otp_service(cli_env, "tenants", "create", "Broken", "--settings", settings)
    assert_clean_failure(run, "settings.code_length", "favourite_colour")


async def test_settings_that_are_not_json_stop_tenants_create_cleanly(
    cli_env: dict[str, str],
) -> None:
    """``--settings`` that is not JSON exits non-zero with one line and no traceback."""
    run = await otp_service(cli_env, "tenants", "create", "Broken", "--settings", "{code_length: 8")
    assert_clean_failure(run)


async def test_a_sender_rule_violation_names_the_setting(cli_env: dict[str, str]) -> None:
    """Settings breaking a sender rule are refused with a line naming the bad sender."""
    settings = {"senders": {"US": [{"type": "alphanumeric_sender_id", "from": "ACME"}]}}
    run = await otp_service(
        cli_env, "tenants", "create", "Broken", "--settings", json.dumps(settings)
    )
    assert_clean_failure(run, "senders.US")
