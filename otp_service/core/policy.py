"""Decisions about a verification that depend only on it and the time."""

from __future__ import annotations

import math

from otp_service.core.model import Verification, VerificationStatus


def effective_status(verification: Verification, now_ms: int) -> VerificationStatus:
    """The status a reader sees: a pending verification past its expiry is ``expired``.

    Expiry is recorded lazily (by the next check or cancel), so readers compute it.
    """
    if verification.status is VerificationStatus.PENDING and now_ms >= verification.expires_at:
        return VerificationStatus.EXPIRED
    return verification.status


def retry_after_seconds(milliseconds: int) -> int:
    """Round a wait up to whole seconds, at least one, for ``Retry-After``."""
    return max(1, math.ceil(milliseconds / 1000))
