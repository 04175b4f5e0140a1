"""Opaque identifiers: a type prefix and 128 random bits, lower-case base32 without padding."""

from __future__ import annotations

import base64
import random


def new_id(prefix: str, rng: random.Random) -> str:
    """Return ``<prefix>_<26 base32 chars>`` carrying 128 bits from ``rng``."""
    raw = rng.getrandbits(128).to_bytes(16, "big")
    return f"{prefix}_{base64.b32encode(raw).decode().rstrip('=').lower()}"
