"""The ``otp-service`` command: run the API, the simulator or both, and administer tenants.

``tenants`` and ``keys`` do what the admin API does, straight against Redis, with the same
settings as ``serve`` (so an operator can bootstrap the first tenant without the API).
``optouts sync`` imports Telnyx's opt-out list into Redis with those settings too.
``export`` and ``import`` copy tenants, their settings and their API key hashes (never the
keys) between Redis servers, as one versioned JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import httpx
import msgspec

from otp_service.adapters.redis_client import open_redis
from otp_service.adapters.redis_optouts import OptOutStore
from otp_service.adapters.redis_tenants import TenantStore
from otp_service.adapters.redis_work import WorkQueue
from otp_service.adapters.telnyx import TelnyxClient
from otp_service.api.schemas import tenant_out
from otp_service.app import create_app
from otp_service.clock import SystemClock
from otp_service.core.model import Tenant, TenantSettings
from otp_service.core.views import rfc3339
from otp_service.dev import ENV_FILE, run_dev
from otp_service.errors import InvalidInput, OtpError
from otp_service.log import configure_logging
from otp_service.runtime import tenants_client
from otp_service.serving import CannotListen, listen, serve
from otp_service.settings import Settings, SettingsError, load_settings
from otp_service.simulator.app import SimulatorConfig, run_simulator
from otp_service.usecases.optout_import import MAX_PAGE_SIZE, import_opt_outs
from otp_service.usecases.redis_safety import UnsafeRedis, check_eviction_policy
from otp_service.usecases.tenant_transfer import (
    Export,
    ExportRefused,
    export_tenants,
    import_tenants,
    read_export,
)
from otp_service.usecases.tenants import Tenants, settings_invalid

T = TypeVar("T")

_TENANT_PAGE = 500


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otp-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the API (configuration from the environment)",
        description="Run the API. Refuses (exit 2) a Redis whose maxmemory-policy is not"
        " noeviction: any other can evict tenant keys or live verifications.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)

    dev = commands.add_parser(
        "dev", help="run a private Redis, the Telnyx simulator and the API, with a ready tenant"
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--simulator-port", type=int, default=8001)
    dev.add_argument(
        "--env-file",
        type=Path,
        default=ENV_FILE,
        help=f"where to write the environment that lets the CLI and serve join it ({ENV_FILE})",
    )

    sim = commands.add_parser("simulator", help="run the Telnyx simulator alone")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8001)
    sim.add_argument("--webhook-url", default=None, help="where webhooks go by default")
    sim.add_argument(
        "--messaging-profile-id",
        default=None,
        help="profile of inbound messages when no send to the handset named one",
    )
    sim.add_argument(
        "--signing-seed",
        default=os.environ.get("SIMULATOR_SIGNING_SEED"),
        help="base64 32-byte Ed25519 seed (default: SIMULATOR_SIGNING_SEED, else random)",
    )

    tenants = commands.add_parser("tenants", help="create or show tenants")
    tenant_commands = tenants.add_subparsers(dest="action", required=True)
    create = tenant_commands.add_parser("create", help="create a tenant")
    create.add_argument("name")
    create.add_argument("--settings", default="{}", help="settings as JSON (API.md)")
    show = tenant_commands.add_parser("show", help="show a tenant")
    show.add_argument("tenant_id")
    tenant_commands.add_parser("list", help="list every tenant, oldest first")
    tenant_commands.add_parser(
        "reindex", help="add tenants created before the tenant list existed to it (idempotent)"
    )

    export = commands.add_parser(
        "export",
        help="write every tenant, its settings and its API key hashes as one JSON document",
        description="Write every listed tenant with its settings and API key records (keyed"
        " hashes, never keys) as one JSON document (format otp-service-export, version 1).",
    )
    export.add_argument(
        "--output", default="-", help="file to write, owner-only (0600) (default: stdout)"
    )
    load = commands.add_parser(
        "import",
        help="write the tenants of an export (keys work with the same OTP_SECRET_KEY)",
        description="Write the tenants of an export into REDIS_URL, each atomically. Refuses"
        " (exit 2, nothing written) another format or version, and tenants that exist unless"
        " --replace. The keys work only with the OTP_SECRET_KEY of the exporting service.",
    )
    load.add_argument("--input", default="-", help="file to read (default: stdin)")
    load.add_argument(
        "--replace", action="store_true", help="overwrite tenants that exist (default: refuse)"
    )

    openapi = commands.add_parser("openapi", help="print the OpenAPI document the API serves")
    openapi.add_argument("--output", default="-", help="file to write (default: stdout)")

    keys = commands.add_parser("keys", help="issue, list or revoke a tenant's API keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    key_create = key_commands.add_parser("create", help="issue a key (shown once)")
    key_create.add_argument("tenant_id")
    key_list = key_commands.add_parser("list", help="list a tenant's keys")
    key_list.add_argument("tenant_id")
    key_revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    key_revoke.add_argument("tenant_id")
    key_revoke.add_argument("key_id")

    optouts = commands.add_parser("optouts", help="import Telnyx's opt-out list")
    optout_commands = optouts.add_subparsers(dest="action", required=True)
    sync = optout_commands.add_parser(
        "sync", help="record every opt-out Telnyx lists (source: import)"
    )
    sync.add_argument("--messaging-profile-id", default=None, help="only this profile's")
    sync.add_argument(
        "--page-size",
        type=_page_size,
        default=MAX_PAGE_SIZE,
        help=f"opt-outs per request, 1 to {MAX_PAGE_SIZE} (default: {MAX_PAGE_SIZE})",
    )
    return parser


def _page_size(value: str) -> int:
    """Refuse a size Telnyx would answer 400 to, before anything is read or recorded."""
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return size


def openapi_document() -> bytes:
    """The OpenAPI document of the API, as ``/schema/openapi.json`` serves it.

    The document does not depend on settings, so placeholders stand in for the secrets.
    """
    placeholders = {
        "OTP_ADMIN_TOKEN": "x" * 16,
        "OTP_SECRET_KEY": "x" * 32,
        "TELNYX_API_KEY": "x",
        "TELNYX_PUBLIC_KEY": base64.b64encode(bytes(32)).decode(),
    }
    schema = create_app(load_settings(placeholders)).openapi_schema.to_schema()
    return msgspec.json.format(msgspec.json.encode(schema, order="sorted"), indent=2) + b"\n"


def _print_json(value: object) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value)).decode() + "\n")


async def _with_tenants(settings: Settings, action: Callable[[Tenants], Awaitable[T]]) -> T:
    async with tenants_client(settings) as tenants:
        return await action(tenants)


async def _all_tenants(tenants: Tenants) -> list[Tenant]:
    """Every tenant, oldest first, read a page at a time."""
    found: list[Tenant] = []
    after: str | None = None
    while True:
        page, after = await tenants.list_tenants(after, _TENANT_PAGE)
        found += page
        if after is None:
            return found


async def _sync_opt_outs(args: argparse.Namespace, settings: Settings) -> None:
    """Import Telnyx's opt-outs over clients of its own, with the service's timeouts."""
    timeout = httpx.Timeout(settings.telnyx_timeout_seconds, connect=1.5)
    async with (
        open_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds) as redis,
        httpx.AsyncClient(base_url=settings.telnyx_base_url, timeout=timeout) as http,
    ):
        summary = await import_opt_outs(
            TelnyxClient(http, api_key=settings.telnyx_api_key.reveal()),
            OptOutStore(redis),
            clock=SystemClock(),
            messaging_profile_id=args.messaging_profile_id,
            page_size=args.page_size,
        )
    line = f"imported {summary.imported} opt-outs from {summary.pages} pages ({summary.new} new)"
    if summary.skipped:
        line += f"; skipped {summary.skipped} without a profile or a valid number"
    sys.stdout.write(line + "\n")


def _tenant_settings(text: str) -> TenantSettings:
    """Read ``--settings``, naming every bad field at once, as the admin API does.

    Raises:
        msgspec.DecodeError: not JSON.
        InvalidInput: JSON that does not fit ``TenantSettings``.
    """
    value = msgspec.json.decode(text)
    try:
        return msgspec.convert(value, TenantSettings)
    except msgspec.ValidationError as exc:
        raise settings_invalid(value, exc, "settings") from exc


def _write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only, even if it existed before."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(data)


async def _transfer(args: argparse.Namespace, settings: Settings, document: Export | None) -> None:
    """``export``, or ``import`` of ``document``, over a Redis connection of their own."""
    async with open_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds) as r:
        store = TenantStore(r, WorkQueue(r))
        if document is not None:
            done = await import_tenants(store, document, replace=args.replace)
            sys.stdout.write(f"imported {done.tenants} tenants with {done.api_keys} API keys\n")
            return
        exported = await export_tenants(store, SystemClock())
    data = msgspec.json.format(msgspec.json.encode(exported)) + b"\n"
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        _write_private(args.output, data)


async def _admin(args: argparse.Namespace, settings: Settings, document: Export | None) -> None:
    if args.command in {"export", "import"}:
        await _transfer(args, settings, document)
    elif args.command == "optouts":
        await _sync_opt_outs(args, settings)
    elif args.command == "tenants" and args.action == "create":
        tenant_settings = _tenant_settings(args.settings)
        tenant = await _with_tenants(settings, lambda t: t.create(args.name, tenant_settings))
        _print_json(tenant_out(tenant))
    elif args.command == "tenants" and args.action == "reindex":
        total = await _with_tenants(settings, lambda t: t.reindex())
        sys.stdout.write(f"{total} tenants listed\n")
    elif args.command == "tenants" and args.action == "list":
        _print_json([tenant_out(t) for t in await _with_tenants(settings, _all_tenants)])
    elif args.command == "tenants":
        _print_json(tenant_out(await _with_tenants(settings, lambda t: t.get(args.tenant_id))))
    elif args.action == "create":
        record, key = await _with_tenants(settings, lambda t: t.create_key(args.tenant_id))
        _print_json({"id": record.id, "key": key, "created_at": rfc3339(record.created_at)})
    elif args.action == "list":
        found = await _with_tenants(settings, lambda t: t.list_keys(args.tenant_id))
        _print_json(
            [{"id": k.id, "prefix": k.prefix, "created_at": rfc3339(k.created_at)} for k in found]
        )
    else:
        await _with_tenants(settings, lambda t: t.revoke_key(args.tenant_id, args.key_id))
        _print_json({"revoked": args.key_id})


async def _check_redis(settings: Settings) -> None:
    """Refuse an evicting Redis before serving.

    Checked here so the refusal is one line, not uvicorn's lifespan traceback; the lifespan
    checks again, for other ways of running the app.
    """
    async with open_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds) as r:
        await check_eviction_policy(r, settings.redis_url)


def _fail_on_settings(exc: SettingsError) -> NoReturn:
    """Print every missing or malformed setting, one line each, and exit with status 2."""
    if len(exc.problems) == 1:
        sys.stderr.write(f"otp-service: {exc.problems[0]}\n")
    else:
        header = f"otp-service: {len(exc.problems)} settings are missing or invalid:\n"
        sys.stderr.write(header + "".join(f"  {problem}\n" for problem in exc.problems))
    sys.exit(2)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    """Bind, refuse an evicting Redis (one line, exit 2), then serve."""
    sock = listen(args.host, args.port)
    try:
        asyncio.run(_check_redis(settings))
    except UnsafeRedis as exc:
        sock.close()
        sys.stderr.write(f"otp-service: {exc}\n")
        sys.exit(2)
    serve(create_app(settings), sock)


def _write_openapi(output: str) -> None:
    document = openapi_document()
    if output == "-":
        sys.stdout.buffer.write(document)
    else:
        Path(output).write_bytes(document)


def _read_input(name: str) -> bytes:
    """``import``'s document, read before connecting, so a bad one is refused first."""
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``otp-service`` console script."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except CannotListen as exc:
        sys.exit(f"otp-service: {exc}")


def _run(args: argparse.Namespace) -> None:
    if args.command == "dev":
        run_dev(args.host, args.port, args.simulator_port, args.env_file)
        return
    if args.command == "openapi":
        _write_openapi(args.output)
        return
    if args.command == "simulator":
        seed = base64.b64decode(args.signing_seed) if args.signing_seed else os.urandom(32)
        configure_logging("INFO")
        listen(args.host, args.port).close()  # a port in use: one line, not uvicorn's error
        run_simulator(
            args.host,
            args.port,
            SimulatorConfig(
                signing_seed=seed,
                default_webhook_url=args.webhook_url,
                messaging_profile_id=args.messaging_profile_id,
            ),
        )
        return
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail_on_settings(exc)
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "serve":
        _serve(args, settings)
        return
    try:
        document = read_export(_read_input(args.input)) if args.command == "import" else None
        asyncio.run(_admin(args, settings, document))
    except ExportRefused as exc:
        sys.stderr.write(f"otp-service: {exc}\n")
        sys.exit(2)
    except OSError as exc:  # --input or --output
        sys.exit(f"otp-service: {exc.strerror}: {exc.filename}")
    except InvalidInput as exc:
        reasons = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        sys.exit(f"otp-service: {exc}" + (f" ({reasons})" if reasons else ""))
    except (OtpError, msgspec.DecodeError) as exc:
        sys.exit(f"otp-service: {exc}")


if __name__ == "__main__":
    main()
