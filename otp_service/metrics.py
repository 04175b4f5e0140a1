"""Prometheus metrics of one app: HTTP traffic by route template, plus OTP outcomes.

Each ``Metrics`` owns its own ``CollectorRegistry``: the process-global registry refuses a
second metric of the same name, and the tests build many apps in one process.

HTTP requests are recorded in two places, because Litestar runs app middleware only after
routing has matched a handler: ``MetricsPlugin`` installs an outermost middleware that times
every matched request and labels it with the route template (Litestar's path format without
types: ``/v1/verifications/{verification_id}``), and a ``before_send`` hook that counts what
the router itself answered (404 for an unknown path, 405 for a wrong method) under the single
route label ``unmatched``. Raw paths never become labels, so a scanner cannot grow the series
without bound. Wiring::

    metrics = Metrics()
    app = Litestar(route_handlers=[...], plugins=[MetricsPlugin(metrics)])

and a handler that serves ``metrics.render()`` on ``GET /metrics``.
"""

from __future__ import annotations

import time
from typing import Final, cast

from litestar.config.app import AppConfig
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.plugins import InitPlugin
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from redis import exceptions as redis_errors

from otp_service.core.model import SenderType, VerificationStatus
from otp_service.core.telnyx_errors import RULES
from otp_service.errors import StoreUnavailable

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus version scrapes.

prometheus-client 0.26 calls ``text/plain; version=1.0.0`` its latest, which only
Prometheus 3 knows; for this service's plain metric names both bodies are the same.
"""

UNMATCHED_ROUTE: Final = "unmatched"
"""Route label of every request the router answered without reaching a handler."""

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods kept as labels; any other token a client invents is recorded as ``OTHER``."""

_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; up to 10 s because no request may take longer (API.md), argon2 sits near 50 ms."""


_SEND_OUTCOMES: Final = ("sent", "rejected", "unavailable")
"""Outcomes of one send attempt (``otp_sends_total``)."""

_RECEIPT_STATUSES: Final = frozenset(
    {
        "queued",
        "sending",
        "sent",
        "delivered",
        "delivery_unconfirmed",
        "sending_failed",
        "delivery_failed",
        "expired",
    }
)
"""Telnyx message statuses kept as labels; anything else is recorded as ``other``."""

_ERROR_CODES: Final = frozenset(RULES)
"""Telnyx error codes kept as labels (the classified ones); any other code is ``other``."""

NO_ERROR: Final = "none"
"""Error-code label of a receipt that carries no error code."""

OTHER: Final = "other"
"""The label of every value outside a bounded set."""

QUEUES: Final = ("event", "expiry", "fallback", "sandbox_receipt")
"""Background queues (job kinds of the tenants' outboxes, as in ``otp_jobs_total``)."""

_ENDED: Final = tuple(s for s in VerificationStatus if s is not VerificationStatus.PENDING)

_TELNYX_BUCKETS: Final = (0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""Seconds; Telnyx answers a send in 100-500 ms, the client gives up after its timeout."""


def _country_label(country: str | None) -> str:
    """Bound the ``country`` label to ISO 3166 alpha-2 shapes (``other`` for anything else)."""
    if country and len(country) == 2 and country.isascii() and country.isupper():  # noqa: PLR2004
        return country
    return OTHER


def redis_error_label(exc: BaseException) -> str:
    """The class name of the Redis error behind ``exc`` (itself or its cause), else ``other``.

    Only redis-py's own classes are names: a bounded set, unlike messages.
    """
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, redis_errors.RedisError):
            return type(candidate).__name__
    return OTHER


def _method_label(method: str) -> str:
    """Bound the ``method`` label: servers accept any token as a method."""
    return method if method in _METHODS else "OTHER"


class Metrics:
    """The service's metrics, registered in a registry of their own.

    Attributes:
        http_requests_total: requests by ``method``, ``route`` (template) and ``status``.
        http_request_duration_seconds: latency of matched requests by ``method`` and ``route``.
        otp_sends_total: SMS send attempts by ``sender_type`` and ``outcome``
            (``sent``, ``rejected``, ``unavailable``).
        otp_checks_total: code checks by ``outcome`` (``approved``, ``wrong_code``,
            ``not_pending``, ``max_attempts_reached``, ...).
        otp_webhooks_total: Telnyx webhooks by ``event_type`` and ``outcome``.
        otp_events_total: tenant event delivery attempts by ``type`` and ``outcome``
            (``delivered``, ``retried``, ``dropped``).
        otp_jobs_total: background jobs (``event``, ``expiry``, ``fallback``,
            ``sandbox_receipt``) by ``outcome`` (``done``, ``retried``, ``failed``: it
            raised and will be taken again).
        otp_worker_last_progress_timestamp_seconds: when the background worker last looked
            for work successfully (Unix time); a stale value means it is stuck.
        otp_sends_by_country_total: send attempts by ``country`` (ISO alpha-2, ``other``),
            ``sender_type`` and ``outcome`` (as ``otp_sends_total``, which stays for the
            dashboards built on it).
        otp_telnyx_send_duration_seconds: the outbound send call to Telnyx, by
            ``sender_type`` and ``outcome``.
        otp_receipts_total: delivery receipts applied, by ``status`` and ``error_code``
            (a classified Telnyx code, ``none`` or ``other``).
        otp_verifications_ended_total: verifications ended, by final ``status``; each
            verification counts once, where its end is applied.
        otp_webhook_signature_failures_total: Telnyx webhooks refused 401.
        otp_redis_errors_total: Redis errors by ``source`` (``api``, ``worker``) and
            ``error`` (redis-py's class name) that reached the API's error handler or the
            worker.
        otp_queue_depth / otp_queue_lag_seconds: per background ``queue``, the jobs due or
            in hand, and how long the oldest due job has waited (set at scrape time).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests_total = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.http_request_duration_seconds = Histogram(
            "http_request_duration_seconds",
            "Time from routing to the last byte of the response, by method and route template.",
            ("method", "route"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.otp_sends_total = Counter(
            "otp_sends_total",
            "SMS send attempts to Telnyx, by sender type and outcome.",
            ("sender_type", "outcome"),
            registry=self.registry,
        )
        self.otp_checks_total = Counter(
            "otp_checks_total",
            "Code checks, by outcome.",
            ("outcome",),
            registry=self.registry,
        )
        self.otp_events_total = Counter(
            "otp_events_total",
            "Tenant event delivery attempts, by event type and outcome.",
            ("type", "outcome"),
            registry=self.registry,
        )
        self.otp_jobs_total = Counter(
            "otp_jobs_total",
            "Background jobs handled, by kind and outcome.",
            ("kind", "outcome"),
            registry=self.registry,
        )
        self.otp_worker_last_progress = Gauge(
            "otp_worker_last_progress_timestamp_seconds",
            "When the background worker last looked for work without an error (Unix time).",
            registry=self.registry,
        )
        self.otp_rate_limited_total = Counter(
            "otp_rate_limited_total",
            "Requests refused by a limit, by limit (`key` for every rate_limit_keys name).",
            ("limit",),
            registry=self.registry,
        )
        self.otp_fraud_blocks_total = Counter(
            "otp_fraud_blocks_total",
            "Number ranges the fraud guard blocked, by mode (block or monitor).",
            ("mode",),
            registry=self.registry,
        )
        self.otp_webhooks_total = Counter(
            "otp_webhooks_total",
            "Telnyx webhooks received, by event type and outcome.",
            ("event_type", "outcome"),
            registry=self.registry,
        )

        self.otp_sends_by_country_total = Counter(
            "otp_sends_by_country_total",
            "SMS send attempts, by destination country, sender type and outcome.",
            ("country", "sender_type", "outcome"),
            registry=self.registry,
        )
        self.otp_telnyx_send_duration_seconds = Histogram(
            "otp_telnyx_send_duration_seconds",
            "Duration of the outbound send call to Telnyx, by sender type and outcome.",
            ("sender_type", "outcome"),
            buckets=_TELNYX_BUCKETS,
            registry=self.registry,
        )
        self.otp_receipts_total = Counter(
            "otp_receipts_total",
            "Delivery receipts applied (Telnyx's and the sandbox's), by status and error code.",
            ("status", "error_code"),
            registry=self.registry,
        )
        self.otp_verifications_ended_total = Counter(
            "otp_verifications_ended_total",
            "Verifications ended, by final status (each verification once).",
            ("status",),
            registry=self.registry,
        )
        self.otp_webhook_signature_failures_total = Counter(
            "otp_webhook_signature_failures_total",
            "Telnyx webhooks refused 401 (missing or wrong signature, or a stale timestamp).",
            registry=self.registry,
        )
        self.otp_redis_errors_total = Counter(
            "otp_redis_errors_total",
            "Redis errors that reached the API's error handler or the worker, by source and class.",
            ("source", "error"),
            registry=self.registry,
        )
        self.otp_queue_depth = Gauge(
            "otp_queue_depth",
            "Jobs of a background queue that are due or in a worker's hands (at scrape time).",
            ("queue",),
            registry=self.registry,
        )
        self.otp_queue_lag_seconds = Gauge(
            "otp_queue_lag_seconds",
            "How long the oldest due job of a background queue has waited (0 if none).",
            ("queue",),
            registry=self.registry,
        )
        # Children bound once: the hot path then does dictionary lookups, not label checks.
        self._sends = {
            (t.value, o): self.otp_sends_total.labels(t.value, o)
            for t in SenderType
            for o in _SEND_OUTCOMES
        }
        self._sends_by_country: dict[str, dict[tuple[str, str], Counter]] = {}
        self._telnyx = {
            (t.value, o): self.otp_telnyx_send_duration_seconds.labels(t.value, o)
            for t in SenderType
            for o in _SEND_OUTCOMES
        }
        self._receipts: dict[str, dict[str, Counter]] = {}
        self._ended: dict[VerificationStatus, Counter] = {
            s: self.otp_verifications_ended_total.labels(s.value) for s in _ENDED
        }
        for queue in QUEUES:
            self.otp_queue_depth.labels(queue).set(0)
            self.otp_queue_lag_seconds.labels(queue).set(0)

    def count_send(self, country: str | None, sender_type: str, outcome: str) -> None:
        """Count one send attempt, in ``otp_sends_total`` and by country."""
        key = (sender_type, outcome)
        self._sends[key].inc()
        label = _country_label(country)
        by_key = self._sends_by_country.get(label)
        if by_key is None:
            by_key = self._sends_by_country[label] = {}
        child = by_key.get(key)
        if child is None:
            child = by_key[key] = self.otp_sends_by_country_total.labels(label, *key)
        child.inc()

    def observe_telnyx(self, sender_type: str, outcome: str, seconds: float) -> None:
        """Record how long one send call to Telnyx took."""
        self._telnyx[sender_type, outcome].observe(seconds)

    def count_receipt(self, status: str, error_codes: tuple[str, ...]) -> None:
        """Count one receipt under its status and first error code (bounded labels)."""
        status_label = status if status in _RECEIPT_STATUSES else OTHER
        if not error_codes:
            code = NO_ERROR
        else:
            code = error_codes[0] if error_codes[0] in _ERROR_CODES else OTHER
        by_code = self._receipts.get(status_label)
        if by_code is None:
            by_code = self._receipts[status_label] = {}
        child = by_code.get(code)
        if child is None:
            child = by_code[code] = self.otp_receipts_total.labels(status_label, code)
        child.inc()

    def count_ended(self, status: VerificationStatus) -> None:
        """Count a verification that has just ended (call once, where the end was applied)."""
        self._ended[status].inc()

    def count_redis_error(self, source: str, exc: BaseException) -> None:
        """Count a Redis error (``StoreUnavailable`` or a raw redis-py error) from ``source``."""
        self.otp_redis_errors_total.labels(source, redis_error_label(exc)).inc()

    def count_if_redis_error(self, source: str, exc: BaseException) -> None:
        """Count ``exc`` only when redis-py raised it.

        Callers above the adapters need not know redis-py's classes to report an error.
        """
        if isinstance(exc, redis_errors.RedisError):
            self.count_redis_error(source, exc)

    def set_queue(self, queue: str, depth: int, lag_seconds: float) -> None:
        """Set one background queue's gauges."""
        self.otp_queue_depth.labels(queue).set(depth)
        self.otp_queue_lag_seconds.labels(queue).set(max(lag_seconds, 0.0))

    def render(self) -> tuple[bytes, str]:
        """Return the exposition body and its full ``Content-Type``, for ``GET /metrics``.

        In Litestar pass the type as a header (``headers={"content-type": ...}``), not as
        ``media_type``: that one gets a second ``charset`` appended.
        """
        return generate_latest(self.registry), CONTENT_TYPE

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one matched request: its count and its latency."""
        method = _method_label(method)
        self.http_requests_total.labels(method, route, str(status)).inc()
        self.http_request_duration_seconds.labels(method, route).observe(seconds)

    def count_refusal(self, limit: str) -> None:
        """Count a request a limit refused; asker keys share one label (tenants name them)."""
        self.otp_rate_limited_total.labels("key" if limit.startswith("key:") else limit).inc()

    def count_unmatched(self, method: str, status: int) -> None:
        """Record one request the router answered itself (unknown path, wrong method)."""
        self.http_requests_total.labels(_method_label(method), UNMATCHED_ROUTE, str(status)).inc()


class MetricsMiddleware(ASGIMiddleware):
    """Count and time each HTTP request that reached a route handler.

    Runs after routing, so ``scope["path_template"]`` holds the matched template. Handler
    errors are turned into responses inside it, so the status seen is the one sent.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Pass the request on, noting the status sent and the time until the app returned."""
        http_scope = cast("HTTPScope", scope)  # ``scopes`` lets only HTTP requests in
        start = time.perf_counter()
        # Stays 500 only if the app raised before starting a response: the outer exception
        # handler then answers 500.
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, send_noting_status)
        finally:
            self._metrics.observe_request(
                http_scope["method"],
                http_scope["path_template"],
                status,
                time.perf_counter() - start,
            )


class MetricsPlugin(InitPlugin):
    """Install request metrics on an app: ``Litestar(..., plugins=[MetricsPlugin(metrics)])``.

    It also counts the Redis errors that reach the app's error handlers.

    The middleware goes first in the app's list, so it is the outermost one and its timing
    covers every other middleware.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Prepend the middleware and add the hook that counts unmatched requests."""
        app_config.middleware.insert(0, MetricsMiddleware(self._metrics))
        app_config.before_send.append(self._count_unmatched)
        app_config.after_exception.append(self._count_redis_error)
        return app_config

    async def _count_redis_error(self, exc: Exception, _: Scope) -> None:
        """Count a Redis error that reached the error handlers (503, or 500 for a raw one).

        A hook of the app sees the errors of every router, the Twilio one with its own
        handlers included.
        """
        if isinstance(exc, StoreUnavailable | redis_errors.RedisError):
            self._metrics.count_redis_error("api", exc)

    async def _count_unmatched(self, message: Message, scope: Scope) -> None:
        """Count responses the router sent itself (no handler in scope) as ``unmatched``.

        They are not timed: no hook runs before routing, and a router miss costs next to
        nothing anyway.
        """
        if (
            message["type"] == "http.response.start"
            and scope["type"] == ScopeType.HTTP
            and "route_handler" not in scope
        ):
            self._metrics.count_unmatched(scope["method"], message["status"])
