"""Tenant data survives: the refusal of an evicting Redis, and ``export`` / ``import``."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from otp_service.clock import SystemClock
from otp_service.core.eviction import eviction_problem, masked_url
from otp_service.devredis import PrivateRedis
from otp_service.metrics import Metrics
from otp_service.runtime import open_services
from otp_service.usecases.redis_safety import UnsafeRedis
from tests.conftest import (
    ADMIN_TOKEN,
    MakeTenant,
    Simulator,
    fresh_number,
    service_environ,
    service_on,
    service_settings,
)
from tests.test_cli import Run, otp_service

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "policy",
    ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"],
)
def test_every_evicting_policy_is_refused_with_the_fix(policy: str) -> None:
    problem = eviction_problem(policy)
    assert problem is not None
    assert policy in problem
    assert "set it to noeviction" in problem


def test_noeviction_is_the_one_safe_policy() -> None:
    assert eviction_problem("noeviction") is None


def test_a_redis_url_is_shown_without_its_password() -> None:
    assert masked_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert masked_url("rediss://app:hunter2@db/1") == "rediss://app:***@db/1"
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_serve_refuses_an_evicting_redis_in_one_line(tmp_path: Path, simulator: Simulator) -> None:
    """serve exits 2 with one line naming the policy and the fix; the password is masked."""
    with PrivateRedis(options=["--maxmemory-policy", "allkeys-lru"]) as server:
        client = sync_redis.Redis(port=server.port)
        client.config_set("requirepass", "hunter2-secret")
        client.close()
        port = server.port
        url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
        result = subprocess.run(
            [sys.executable, "-m", "otp_service", "serve", "--port", "0"],
            env=os.environ | service_environ(url, simulator) | {"PYTHONPATH": str(REPO)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    lines = result.stderr.strip().splitlines()
    expected = (
        f"otp-service: Redis at redis://:***@127.0.0.1:{port}/0 has maxmemory-policy"
        " allkeys-lru, which can evict tenant keys or live verifications; set it to noeviction"
    )
    assert lines == [expected], result.stderr
    assert "hunter2" not in result.stderr + result.stdout


async def test_the_lifespan_refuses_too_when_config_is_renamed(simulator: Simulator) -> None:
    """A managed Redis without CONFIG is still read (INFO), by any way of running the app."""
    options = ["--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", ""]
    with PrivateRedis(options=options) as server:
        settings = service_settings(server.url, simulator, OTP_RUN_WORKERS="0")
        with pytest.raises(UnsafeRedis, match="maxmemory-policy volatile-lru"):
            async with open_services(
                settings, clock=SystemClock(), rng=secrets.SystemRandom(), metrics=Metrics()
            ):
                pass


def test_the_test_and_dev_redis_never_evicts(redis_url: str) -> None:
    client = sync_redis.Redis.from_url(redis_url)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    client.close()


async def cli(redis_url: str, simulator: Simulator, *args: str, stdin: bytes = b"") -> Run:
    """Run ``otp-service ARGS`` against ``redis_url`` as an operator would."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **service_environ(redis_url, simulator),
        "OTP_LOG_LEVEL": "WARNING",
    }
    return await otp_service(env, *args, stdin=stdin)


def assert_refused(run: Run, *mentions: str) -> None:
    """Exit status 2, one line on stderr naming ``mentions``, no traceback."""
    assert run.returncode == 2, run
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    for mention in mentions:
        assert mention in lines[0], lines[0]


async def start_status(service: httpx.AsyncClient, key: str) -> int:
    """The status of a start made with tenant API key ``key`` (201: the key works)."""
    started = await service.post(
        "/v1/verifications",
        json={"phone_number": fresh_number()},
        headers={"Authorization": f"Bearer {key}"},
    )
    return started.status_code


async def listed_ids(admin: httpx.AsyncClient) -> list[str]:
    """Every tenant id ``GET /admin/tenants`` lists, page after page."""
    ids: list[str] = []
    params = {"limit": "500"}
    while True:
        page = (await admin.get("/admin/tenants", params=params)).json()
        ids += [tenant["id"] for tenant in page["data"]]
        if page["next_cursor"] is None:
            return ids
        params["cursor"] = page["next_cursor"]


async def test_export_and_import_move_tenants_and_their_working_keys(
    tmp_path: Path,
    redis_url: str,
    simulator: Simulator,
    admin: httpx.AsyncClient,
    make_tenant: MakeTenant,
) -> None:
    """Tenants exported from one Redis and imported into a fresh one keep their settings,
    and their API keys work against a service on the new Redis with the same secret;
    a revoked key stays revoked, and no key is ever in the file."""
    first = await make_tenant(brand="Exported", code_length=8)
    second = await make_tenant(max_sends=2)
    patched = await admin.patch(f"/admin/tenants/{second.id}", json={"name": "Renamed"})
    assert patched.status_code == 200, patched.text
    extra = (await admin.post(f"/admin/tenants/{first.id}/api-keys")).json()
    revoking = await admin.delete(f"/admin/tenants/{first.id}/api-keys/{extra['id']}")
    assert revoking.status_code == 204, revoking.text
    before = {t.id: (await admin.get(f"/admin/tenants/{t.id}")).json() for t in (first, second)}

    path = tmp_path / "tenants.json"
    exported = await cli(redis_url, simulator, "export", "--output", str(path))
    assert exported.returncode == 0, exported.stderr
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    document = json.loads(text)
    assert (document["format"], document["version"]) == ("otp-service-export", 1)
    assert {first.id, second.id} <= {t["id"] for t in document["tenants"]}
    for secret in (first.key, second.key, extra["key"]):
        assert secret not in text

    with PrivateRedis() as target:
        imported = await cli(target.url, simulator, "import", "--input", str(path))
        assert imported.returncode == 0, imported.stderr
        assert f"imported {len(document['tenants'])} tenants" in imported.stdout
        with service_on(target.url, simulator) as url:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as there:
                for tenant_id, was in before.items():
                    assert (await there.get(f"/admin/tenants/{tenant_id}")).json() == was
                assert await listed_ids(there) == [t["id"] for t in document["tenants"]]
                assert await start_status(there, first.key) == 201
                assert await start_status(there, second.key) == 201
                assert await start_status(there, extra["key"]) == 401


async def test_import_replace_makes_tenants_what_the_export_says(
    tmp_path: Path, redis_url: str, simulator: Simulator, make_tenant: MakeTenant
) -> None:
    """Without --replace an existing tenant stops the import before any write; with it, the
    tenant's name, settings and keys become the export's (a key issued since stops working)."""
    tenant = await make_tenant(brand="Original")
    path = tmp_path / "tenants.json"
    assert (await cli(redis_url, simulator, "export", "--output", str(path))).returncode == 0
    document = json.loads(path.read_text())
    with PrivateRedis() as target, service_on(target.url, simulator) as url:
        assert (await cli(target.url, simulator, "import", "--input", str(path))).returncode == 0
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=15) as there:
            changed = await there.patch(
                f"/admin/tenants/{tenant.id}",
                json={"name": "Changed", "settings": {"brand": "New"}},
            )
            assert changed.status_code == 200, changed.text
            since = (await there.post(f"/admin/tenants/{tenant.id}/api-keys")).json()["key"]

            refused = await cli(target.url, simulator, "import", "--input", str(path))
            assert_refused(refused, "already exist", "--replace")
            assert (await there.get(f"/admin/tenants/{tenant.id}")).json()["name"] == "Changed"

            replaced = await cli(
                target.url, simulator, "import", "--replace", stdin=path.read_bytes()
            )
            assert replaced.returncode == 0, replaced.stderr
            read = (await there.get(f"/admin/tenants/{tenant.id}")).json()
            assert (read["name"], read["settings"]["brand"]) == ("Test tenant", "Original")
            assert await start_status(there, tenant.key) == 201
            assert await start_status(there, since) == 401
            assert await listed_ids(there) == [t["id"] for t in document["tenants"]]


@pytest.mark.parametrize(
    ("document", "mention"),
    [
        ({"format": "something-else", "version": 1, "tenants": []}, "not an otp-service-export"),
        ({"format": "otp-service-export", "version": 2, "tenants": []}, "version 2"),
        ({"format": "otp-service-export", "version": 1, "tenants": [{"id": 1}]}, "invalid"),
    ],
)
async def test_import_refuses_another_format_or_version_in_one_line(
    redis_url: str, simulator: Simulator, document: dict[str, object], mention: str
) -> None:
    run = await cli(redis_url, simulator, "import", stdin=json.dumps(document).encode())
    assert_refused(run, mention)


async def test_import_refuses_what_is_not_json(redis_url: str, simulator: Simulator) -> None:
    assert_refused(await cli(redis_url, simulator, "import", stdin=b"{not json"), "not JSON")
