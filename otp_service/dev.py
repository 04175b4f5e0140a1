"""``otp-service dev``: the whole service on one machine, with no account anywhere.

It starts a private Redis (``devredis``), the Telnyx simulator and the API in one process,
wires them together with fresh secrets, creates a tenant with an API key, and prints what
a developer needs to try it: the SMS inbox first, then curl calls. Everything is thrown
away on exit.

The secrets are fresh on every run and exist nowhere else, so the CLI (which reads the
environment, like ``serve``) could not join the instance: a key it created in the dev
Redis with another ``OTP_SECRET_KEY`` would answer 401. ``dev`` therefore writes the
instance's environment to ``.otp-service/dev.env`` (mode 0600; removed on exit) and prints
how to load it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shlex
import signal
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nacl.signing import SigningKey

from otp_service.app import create_app
from otp_service.core.model import Sender, SenderType, TenantSettings
from otp_service.devredis import PrivateRedis
from otp_service.log import configure_logging
from otp_service.runtime import tenants_client
from otp_service.serving import Server, config_for, listen, url_of
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


ENV_FILE: Final = Path(".otp-service/dev.env")
"""Where ``dev`` writes its environment, relative to the directory it runs in."""


@dataclass(frozen=True, slots=True)
class _Instance:
    """What a developer needs to reach the running instance, from curl, the CLI or ``serve``."""

    api: str
    inbox: str
    environment: dict[str, str]
    tenant_id: str
    key: str


def _cli() -> str:
    """How to call the CLI of this installation: ``.venv/bin/otp-service`` after scripts/dev.

    ``scripts/dev`` installs it in ``.venv``, which is not on ``PATH``, so the plain name would
    not be found; the path is shown relative to the working directory when it is below it.
    """
    script = Path(sys.executable).with_name("otp-service")
    if not script.exists():
        return f"{sys.executable} -m otp_service"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def _write_env_file(path: Path, instance: _Instance) -> str:
    """Write the instance's environment as shell assignments, readable by the owner only.

    It holds the admin token and the server secret, hence mode 0600 (in a 0700 directory),
    set on the open file so no other user can read it even for a moment.
    """
    lines = [
        "# otp-service dev: the environment of the running instance (removed when it stops).",
        "# In a shell:  set -a; . " + shlex.quote(str(path)) + "; set +a",
        *(f"{name}={shlex.quote(value)}" for name, value in instance.environment.items()),
        "# Not read by the service: for your own calls with curl or the Python client.",
        f"OTP_DEV_API_URL={shlex.quote(instance.api)}",
        f"OTP_DEV_INBOX_URL={shlex.quote(instance.inbox)}",
        f"OTP_DEV_TENANT_ID={shlex.quote(instance.tenant_id)}",
        f"OTP_DEV_API_KEY={shlex.quote(instance.key)}",
    ]
    content = "\n".join(lines) + "\n"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(content)
    return content


def _remove_env_file(path: Path, content: str) -> None:
    """Remove the file unless another ``dev`` has written its own there meanwhile."""
    with contextlib.suppress(OSError):
        if path.read_text() == content:
            path.unlink()


async def _dev_tenant(settings: Settings) -> tuple[str, str]:
    async with tenants_client(settings) as tenants:
        tenant = await tenants.create("Dev tenant", DEV_TENANT_SETTINGS)
        _, key = await tenants.create_key(tenant.id)
    return tenant.id, key


def _banner(instance: _Instance, simulator: str, env_file: Path) -> str:
    api, key = instance.api, instance.key
    load = f"set -a; . {shlex.quote(str(env_file))}; set +a"
    return f"""SMS inbox  {instance.inbox}

otp-service dev is running (Ctrl-C stops everything)

  API                 {api}   (Swagger UI: {api}/schema/swagger)
  Telnyx simulator    {simulator}   (sent SMS as JSON: {simulator}/_sim/messages)
  Redis               {instance.environment["REDIS_URL"]}   (private, thrown away on exit)
  admin token         {instance.environment["OTP_ADMIN_TOKEN"]}
  tenant              {instance.tenant_id}
  tenant API key      {key}

The CLI and `serve` join this instance with its environment, written to {env_file}:
  {load}
  {_cli()} tenants show {instance.tenant_id}

Try it:
  curl -s -X POST {api}/v1/verifications -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"phone_number": "+14155552671"}}'
  open {instance.inbox} and read the code, or: curl -s {simulator}/_sim/messages
  curl -s -X POST {api}/v1/verifications/<id>/check -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' -d '{{"code": "<code>"}}'
"""


async def _serve(
    settings: Settings,
    environment: dict[str, str],
    simulator: SimulatorConfig,
    sockets: tuple[socket.socket, socket.socket],
    env_file: Path,
) -> None:
    tenant_id, key = await _dev_tenant(settings)
    api_socket, simulator_socket = sockets
    simulator_url = url_of(simulator_socket)
    instance = _Instance(
        api=url_of(api_socket),
        inbox=simulator_url + "/",
        environment=environment,
        tenant_id=tenant_id,
        key=key,
    )
    servers = [
        Server(config_for(create_app(settings)), own_signals=False),
        Server(config_for(create_simulator_app(simulator)), own_signals=False),
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, sockets, strict=True)
    ]
    content = None
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.05)
    else:
        content = _write_env_file(env_file, instance)
        sys.stdout.write(_banner(instance, simulator_url, env_file))
        sys.stdout.flush()
    try:
        await asyncio.gather(*tasks)
    finally:
        if content is not None:
            _remove_env_file(env_file, content)


def run_dev(host: str, port: int, simulator_port: int, env_file: Path = ENV_FILE) -> None:
    """Run Redis, the simulator and the API until Ctrl-C.

    Raises:
        CannotListen: a port is taken (checked before anything starts).
    """
    configure_logging(os.environ.get("OTP_LOG_LEVEL", "WARNING"), "text")
    with contextlib.ExitStack() as stack:
        api_socket = stack.enter_context(listen(host, port, "--port"))
        simulator_socket = stack.enter_context(listen(host, simulator_port, "--simulator-port"))
        redis = stack.enter_context(PrivateRedis())
        simulator_seed = os.urandom(32)
        telnyx_key = secrets.token_urlsafe(24)
        environment = {
            "REDIS_URL": redis.url,
            "OTP_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "OTP_SECRET_KEY": secrets.token_urlsafe(48),
            "TELNYX_API_KEY": telnyx_key,
            "TELNYX_PUBLIC_KEY": base64.b64encode(
                bytes(SigningKey(simulator_seed).verify_key)
            ).decode(),
            "TELNYX_BASE_URL": url_of(simulator_socket) + "/v2",
            "OTP_PUBLIC_URL": url_of(api_socket),
            "OTP_ALLOW_PRIVATE_WEBHOOKS": "1",
            "OTP_TWILIO_API": "1",
        }
        settings = load_settings(environment)
        simulator = SimulatorConfig(
            signing_seed=simulator_seed,
            api_key=telnyx_key,
            messaging_profile_id=DEV_TENANT_SETTINGS.messaging_profile_id,
        )
        asyncio.run(
            _serve(settings, environment, simulator, (api_socket, simulator_socket), env_file)
        )
