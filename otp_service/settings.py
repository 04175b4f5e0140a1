"""Process settings, read once from the environment into a frozen object.

Every variable is listed in ``ENVIRONMENT`` with its default and meaning; the README's table
is written from the same list. Every variable is read before anything is reported, so one
``SettingsError`` lists every missing or malformed value (one line each, naming the
variable, never echoing its value), which ``__main__`` prints before exiting with status 2:
an operator fixes a new deployment's environment in one round, not one variable per run.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar, cast
from urllib.parse import urlsplit

from otp_service.log import LogFormat

T = TypeVar("T")


class SettingsError(Exception):
    """Settings are missing or malformed; ``problems`` has one line per variable, naming it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Secret:
    """A string that never shows itself in ``repr`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def reveal(self) -> str:
        """Return the secret itself, for the one place that needs it."""
        return self._value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process reads from its environment."""

    redis_url: str
    admin_token: Secret
    secret_key: Secret
    telnyx_api_key: Secret
    telnyx_public_key: bytes
    telnyx_base_url: str
    signing_key_seed: bytes | None
    public_url: str | None
    allow_private_webhooks: bool
    argon2_time_cost: int
    argon2_memory_kib: int
    argon2_parallelism: int
    hash_threads: int
    telnyx_timeout_seconds: float
    redis_timeout_seconds: float
    max_body_bytes: int
    log_level: str
    log_format: LogFormat
    run_workers: bool
    job_lease_seconds: float
    twilio_api: bool
    secret_key_previous: Secret | None
    signing_key_seed_previous: bytes | None


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its name, default (``None``: required) and meaning."""

    name: str
    default: str | None
    meaning: str


ENVIRONMENT: Final = (
    Variable(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis to keep verifications, tenants and keys in (redis:// or rediss://).",
    ),
    Variable("OTP_ADMIN_TOKEN", None, "Bearer token of the admin API; at least 16 characters."),
    Variable(
        "OTP_SECRET_KEY",
        None,
        "Server secret (32+ characters): keys code and API-key hashes; never stored in Redis.",
    ),
    Variable("TELNYX_API_KEY", None, "Telnyx API key (Bearer) used to send messages."),
    Variable(
        "TELNYX_PUBLIC_KEY",
        None,
        "Base64 Ed25519 public key (32 bytes) that signs Telnyx webhooks.",
    ),
    Variable(
        "TELNYX_BASE_URL",
        "https://api.telnyx.com/v2",
        "Telnyx API base URL; the simulator's URL in development.",
    ),
    Variable(
        "OTP_SIGNING_KEY",
        "",
        "Base64 32-byte Ed25519 seed signing tenant events; derived from OTP_SECRET_KEY if empty.",
    ),
    Variable(
        "OTP_PUBLIC_URL",
        "",
        "Public URL of this service; messages then ask for webhooks at <url>/webhooks/telnyx.",
    ),
    Variable(
        "OTP_ALLOW_PRIVATE_WEBHOOKS",
        "0",
        "1 lets tenant event URLs be http or private addresses (development and tests only).",
    ),
    Variable("OTP_ARGON2_TIME_COST", "2", "argon2id iterations (OWASP minimum 2 at 19 MiB)."),
    Variable("OTP_ARGON2_MEMORY_KIB", "19456", "argon2id memory in KiB (19456 = 19 MiB)."),
    Variable("OTP_ARGON2_PARALLELISM", "1", "argon2id lanes."),
    Variable("OTP_HASH_THREADS", "0", "Threads that run argon2; 0 means one per CPU core."),
    Variable("OTP_TELNYX_TIMEOUT_SECONDS", "5", "Total time allowed for one Telnyx request."),
    Variable("OTP_REDIS_TIMEOUT_SECONDS", "2", "Time allowed for one Redis command."),
    Variable("OTP_MAX_BODY_BYTES", "16384", "Largest request body accepted."),
    Variable("OTP_LOG_LEVEL", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
    Variable(
        "OTP_LOG_FORMAT",
        "json",
        "json: one JSON object a line (for log pipelines); text: one readable line (dev's).",
    ),
    Variable(
        "OTP_RUN_WORKERS",
        "1",
        "1 runs the background worker (events, expiries, fallbacks) here; 0 serves HTTP only.",
    ),
    Variable(
        "OTP_JOB_LEASE_SECONDS",
        "10",
        "A background job in hand is leased this long, renewed while it runs; a dead worker's"
        " job is taken over when its lease runs out.",
    ),
    Variable(
        "OTP_TWILIO_API",
        "0",
        "1 serves the Twilio Verify v2-compatible API under /twilio (docs/twilio.md).",
    ),
    Variable(
        "OTP_SECRET_KEY_PREVIOUS",
        "",
        "During a rotation, the former OTP_SECRET_KEY: its API-key and code hashes are still"
        " accepted (README, Rotating secrets).",
    ),
    Variable(
        "OTP_SIGNING_KEY_PREVIOUS",
        "",
        "During a rotation, the former OTP_SIGNING_KEY: listed by /v1/webhook-public-key beside"
        " the current key.",
    ),
)


class _Reader:
    """Reads variables, noting every missing or malformed one instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.problems: list[str] = []

    def __call__(self, name: str, parse: Callable[[str], T], expect: str) -> T:
        """Return the parsed value of ``name``; a problem is noted and a placeholder returned.

        The placeholder never leaves ``load_settings``, which raises once all are read.
        """
        var = next(v for v in ENVIRONMENT if v.name == name)
        value = self._environ.get(name, "").strip()
        if not value and var.default is None:
            self.problems.append(f"{name} is required: {var.meaning}")
            return cast("T", None)
        try:
            return parse(value or cast("str", var.default))
        except (ValueError, binascii.Error):
            self.problems.append(f"{name} is malformed: expected {expect}")
            return cast("T", None)


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not low <= number <= high:
            raise ValueError(value)
        return number

    return parse


def _positive_float(value: str) -> float:
    number = float(value)
    if not 0 < number <= 60:  # noqa: PLR2004
        raise ValueError(value)
    return number


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parts = urlsplit(value)
        located = parts.path if parts.scheme == "unix" else parts.netloc
        if parts.scheme not in schemes or not located:
            raise ValueError(value)
        return value.rstrip("/")

    return parse


def _optional_url(value: str) -> str | None:
    return _url(("http", "https"))(value) if value else None


def _key32(value: str) -> bytes:
    key = base64.b64decode(value, validate=True)
    if len(key) != 32:  # noqa: PLR2004
        raise ValueError(value)
    return key


def _optional_key32(value: str) -> bytes | None:
    return _key32(value) if value else None


def _bool(value: str) -> bool:
    if value not in {"0", "1", "true", "false"}:
        raise ValueError(value)
    return value in {"1", "true"}


def _min_length(length: int) -> Callable[[str], Secret]:
    def parse(value: str) -> Secret:
        if len(value) < length:
            raise ValueError(value)
        return Secret(value)

    return parse


def _optional_secret(value: str) -> Secret | None:
    return _min_length(32)(value) if value else None


def _level(value: str) -> str:
    level = value.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(value)
    return level


def _log_format(value: str) -> LogFormat:
    if value not in {"json", "text"}:
        raise ValueError(value)
    return cast("LogFormat", value)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting.

    Raises:
        SettingsError: listing every missing or malformed variable, in ``ENVIRONMENT`` order.
    """
    read = _Reader(os.environ if environ is None else environ)
    threads = read("OTP_HASH_THREADS", _int_in(0, 256), "a whole number from 0 to 256")
    settings = Settings(
        redis_url=read(
            "REDIS_URL",
            _url(("redis", "rediss", "unix")),
            "a redis://, rediss:// or unix:// URL",
        ),
        admin_token=read("OTP_ADMIN_TOKEN", _min_length(16), "at least 16 characters"),
        secret_key=read("OTP_SECRET_KEY", _min_length(32), "at least 32 characters"),
        telnyx_api_key=read("TELNYX_API_KEY", Secret, "a Telnyx API key"),
        telnyx_public_key=read("TELNYX_PUBLIC_KEY", _key32, "base64 of 32 bytes"),
        telnyx_base_url=read("TELNYX_BASE_URL", _url(("http", "https")), "an http(s) URL"),
        signing_key_seed=read("OTP_SIGNING_KEY", _optional_key32, "base64 of 32 bytes"),
        public_url=read("OTP_PUBLIC_URL", _optional_url, "an http(s) URL"),
        allow_private_webhooks=read("OTP_ALLOW_PRIVATE_WEBHOOKS", _bool, "0 or 1"),
        argon2_time_cost=read("OTP_ARGON2_TIME_COST", _int_in(1, 20), "1 to 20"),
        argon2_memory_kib=read(
            "OTP_ARGON2_MEMORY_KIB", _int_in(1024, 4_194_304), "1024 to 4194304 KiB"
        ),
        argon2_parallelism=read("OTP_ARGON2_PARALLELISM", _int_in(1, 16), "1 to 16"),
        hash_threads=threads or (os.cpu_count() or 1),
        telnyx_timeout_seconds=read(
            "OTP_TELNYX_TIMEOUT_SECONDS", _positive_float, "seconds, above 0 and at most 60"
        ),
        redis_timeout_seconds=read(
            "OTP_REDIS_TIMEOUT_SECONDS", _positive_float, "seconds, above 0 and at most 60"
        ),
        max_body_bytes=read("OTP_MAX_BODY_BYTES", _int_in(1024, 1_048_576), "1024 to 1048576"),
        log_level=read("OTP_LOG_LEVEL", _level, "DEBUG, INFO, WARNING or ERROR"),
        log_format=read("OTP_LOG_FORMAT", _log_format, "json or text"),
        run_workers=read("OTP_RUN_WORKERS", _bool, "0 or 1"),
        job_lease_seconds=read(
            "OTP_JOB_LEASE_SECONDS", _positive_float, "seconds, above 0, at most 60"
        ),
        twilio_api=read("OTP_TWILIO_API", _bool, "0 or 1"),
        secret_key_previous=read(
            "OTP_SECRET_KEY_PREVIOUS", _optional_secret, "empty or at least 32 characters"
        ),
        signing_key_seed_previous=read(
            "OTP_SIGNING_KEY_PREVIOUS", _optional_key32, "base64 of 32 bytes"
        ),
    )
    if read.problems:
        order = [v.name for v in ENVIRONMENT]
        raise SettingsError(sorted(read.problems, key=lambda line: order.index(line.split()[0])))
    return settings
