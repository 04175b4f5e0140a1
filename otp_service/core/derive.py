"""Purpose-bound keys derived from the server secret, so no two uses share a key.

During a rotation there are two secrets (``OTP_SECRET_KEY`` and ``OTP_SECRET_KEY_PREVIOUS``).
Each is named by a short key id, itself derived (one-way) from it, so a stored code hash can
say which secret made it without revealing anything about the secret.
"""

from __future__ import annotations

import hashlib
import hmac


def derive_key(secret: str, purpose: str) -> bytes:
    """Return 32 bytes for ``purpose`` (HMAC-SHA256 of the purpose label under the secret)."""
    return hmac.new(secret.encode(), f"otp-service/{purpose}".encode(), hashlib.sha256).digest()


def secret_id(secret: str) -> str:
    """A short public name of a secret (8 hex characters), recorded beside what it keyed.

    32 bits are plenty to tell two or three secret generations apart, and an HMAC output
    gives nothing away about the secret.
    """
    return derive_key(secret, "key-id")[:4].hex()


def public_key_id(public_key: bytes) -> str:
    """A short name of an Ed25519 public key (16 hex characters of its SHA-256)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def api_key_digest(pepper: bytes, key: str) -> str:
    """The keyed hash (hex) under which an API key is stored and looked up."""
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
