"""``otp-service dev``: the whole service on one machine, with no account anywhere.

It starts a private Redis (``devredis``), the Telnyx simulator and the API in one process,
wires them together with fresh secrets, creates a tenant with an API key, and prints what
a developer needs to try it with curl. Everything is thrown away on exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import sys
import uuid
from collections.abc import Generator
from typing import Final

import uvicorn
from nacl.signing import SigningKey

from otp_service.app import create_app
from otp_service.core.model import Sender, SenderType, TenantSettings
from otp_service.devredis import PrivateRedis
from otp_service.log import configure_logging
from otp_service.runtime import tenants_client
from otp_service.settings import Settings, load_settings
from otp_service.simulator.app import SimulatorConfig, create_simulator_app

DEV_TENANT_SETTINGS: Final = TenantSettings(
    brand="Acme",
    messaging_profile_id=str(uuid.UUID(int=0x0DE0)),
    senders={
        "default": [Sender(type=SenderType.LONG_CODE, from_="+13125550100")],
        "GB": [
            Sender(type=SenderType.ALPHANUMERIC_SENDER_ID, from_="ACME"),
            Sender(type=SenderType.LONG_CODE, from_="+447400123000"),
        ],
    },
)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to ``run_dev``, which runs two of them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing: ``run_dev`` stops both servers on one Ctrl-C."""
        yield


async def _dev_tenant(settings: Settings) -> tuple[str, str]:
    async with tenants_client(settings) as tenants:
        tenant = await tenants.create("Dev tenant", DEV_TENANT_SETTINGS)
        _, key = await tenants.create_key(tenant.id)
    return tenant.id, key


def _banner(api: str, simulator: str, settings: Settings, tenant_id: str, key: str) -> str:
    return f"""
otp-service dev is running (Ctrl-C stops everything)

  API                 {api}   (OpenAPI: {api}/schema/openapi.json)
  Telnyx simulator    {simulator}   (sent SMS: {simulator}/_sim/messages)
  Redis               {settings.redis_url}   (private, thrown away on exit)
  admin token         {settings.admin_token.reveal()}
  tenant              {tenant_id}
  tenant API key      {key}

Try it:
  curl -s -X POST {api}/v1/verifications -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"phone_number": "+14155552671"}}'
  curl -s {simulator}/_sim/messages          # read the code from the SMS text
  curl -s -X POST {api}/v1/verifications/<id>/check -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"code": "<code>"}}'
"""


async def _serve(
    settings: Settings, simulator: SimulatorConfig, host: str, ports: tuple[int, int]
) -> None:
    tenant_id, key = await _dev_tenant(settings)
    api_port, simulator_port = ports
    servers = [
        _Server(
            uvicorn.Config(create_app(settings), host=host, port=api_port, log_level="warning")
        ),
        _Server(
            uvicorn.Config(
                create_simulator_app(simulator), host=host, port=simulator_port, log_level="warning"
            )
        ),
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.05)
    else:
        sys.stdout.write(
            _banner(
                f"http://{host}:{api_port}",
                f"http://{host}:{simulator_port}",
                settings,
                tenant_id,
                key,
            )
        )
        sys.stdout.flush()
    await asyncio.gather(*tasks)


def run_dev(host: str, port: int, simulator_port: int) -> None:
    """Run Redis, the simulator and the API until Ctrl-C."""
    configure_logging(os.environ.get("OTP_LOG_LEVEL", "WARNING"))
    simulator_seed = os.urandom(32)
    telnyx_key = secrets.token_urlsafe(24)
    with PrivateRedis() as redis:
        settings = load_settings(
            {
                "REDIS_URL": redis.url,
                "OTP_ADMIN_TOKEN": secrets.token_urlsafe(24),
                "OTP_SECRET_KEY": secrets.token_urlsafe(48),
                "TELNYX_API_KEY": telnyx_key,
                "TELNYX_PUBLIC_KEY": base64.b64encode(
                    bytes(SigningKey(simulator_seed).verify_key)
                ).decode(),
                "TELNYX_BASE_URL": f"http://{host}:{simulator_port}/v2",
                "OTP_PUBLIC_URL": f"http://{host}:{port}",
                "OTP_ALLOW_PRIVATE_WEBHOOKS": "1",
            }
        )
        simulator = SimulatorConfig(signing_seed=simulator_seed, api_key=telnyx_key)
        asyncio.run(_serve(settings, simulator, host, (port, simulator_port)))
