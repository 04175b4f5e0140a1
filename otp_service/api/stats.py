"""Tenant API: conversion statistics, what operators read to spot fraud and bad routes."""

from __future__ import annotations

from typing import Annotated, Final

from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from otp_service.api.dependencies import provide_tenant
from otp_service.api.schemas import StatsOut, StatsRowOut
from otp_service.core.model import Tenant
from otp_service.core.views import rfc3339
from otp_service.problems import problem_responses
from otp_service.runtime import Services

_TIME: Final = "RFC 3339 with an offset, e.g. `2026-11-28T10:00:00Z`"


@get(
    "/v1/stats",
    tags=["stats"],
    summary="Conversion statistics by country and sender type",
    security=[{"ApiKey": []}],
    dependencies={"tenant": Provide(provide_tenant)},
    responses=problem_responses(401, 422),
)
async def stats(
    tenant: NamedDependency[Tenant],
    services: NamedDependency[Services],
    start: Annotated[
        str | None,
        QueryParameter(
            name="from",
            description=f"Start of the window, {_TIME}; default: 24 h before `to`",
        ),
    ] = None,
    end: Annotated[
        str | None,
        QueryParameter(
            name="to",
            description=f"End of the window (excluded), {_TIME}; default: now",
        ),
    ] = None,
) -> StatsOut:
    """Started, sent, delivered, approved, failed and blocked, per country and sender type.

    Counts are kept per hour: the answer sums the hours whose start lies in `[from, to)`.
    `from` must be before `to`, at most 40 days apart (else 422 `validation_error`).
    """
    report = await services.stats.report(tenant, start, end)
    return StatsOut(
        from_=rfc3339(report.window.start),
        to=rfc3339(report.window.end),
        rows=[
            StatsRowOut(
                country=row.country,
                sender_type=row.sender_type,
                started=row.started,
                sent=row.sent,
                delivered=row.delivered,
                approved=row.approved,
                conversion_rate=row.conversion_rate,
                failed_sends=row.failed_sends,
                blocked=row.blocked,
            )
            for row in report.rows
        ],
    )
