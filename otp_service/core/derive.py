"""Purpose-bound keys derived from the one server secret, so no two uses share a key."""

from __future__ import annotations

import hashlib
import hmac


def derive_key(secret: str, purpose: str) -> bytes:
    """Return 32 bytes for ``purpose`` (HMAC-SHA256 of the purpose label under the secret)."""
    return hmac.new(secret.encode(), f"otp-service/{purpose}".encode(), hashlib.sha256).digest()
