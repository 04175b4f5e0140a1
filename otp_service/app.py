"""The composition root: ``create_app`` builds the Litestar app and nothing else does.

Building connects to nothing; Redis, the Telnyx client and the argon2 pool are opened by
the lifespan (``runtime.open_services``). ``settings=None`` reads the environment, because
the ``litestar`` CLI calls factories without arguments.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.di import Provide

from otp_service.api.admin import AdminController
from otp_service.api.bodies import JsonRequest
from otp_service.api.dependencies import provide_services
from otp_service.api.methods import complete_allow
from otp_service.api.openapi import openapi_config, refine
from otp_service.api.operations import live, metrics, ready, telnyx_webhook
from otp_service.api.stats import stats
from otp_service.api.twilio.controller import twilio_router
from otp_service.api.verifications import (
    OptOutController,
    VerificationController,
    webhook_public_key,
)
from otp_service.clock import Clock, SystemClock
from otp_service.metrics import Metrics, MetricsPlugin
from otp_service.problems import EXCEPTION_HANDLERS
from otp_service.runtime import open_services
from otp_service.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Litestar:
    """Build the service; tests pass their own settings and clock."""
    settings = settings or load_settings()
    clock = clock or SystemClock()
    rng = rng or secrets.SystemRandom()
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings, clock=clock, rng=rng, metrics=app_metrics) as services:
            app.state.services = services
            yield

    app = Litestar(
        route_handlers=[
            VerificationController,
            OptOutController,
            webhook_public_key,
            stats,
            AdminController,
            telnyx_webhook,
            live,
            ready,
            metrics,
            *([twilio_router()] if settings.twilio_api else []),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        plugins=[MetricsPlugin(app_metrics)],
        openapi_config=openapi_config(),
        logging_config=None,  # the process (CLI) owns logging; building an app changes none
        request_max_body_size=settings.max_body_bytes,
        request_class=JsonRequest,
        before_send=[complete_allow],
    )
    refine(app)
    return app
