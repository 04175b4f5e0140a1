"""Code hashing: argon2id over an HMAC of the code, so Redis alone is not enough to guess it.

argon2-cffi exposes no argon2 "secret" (K) parameter, so the server secret enters as a
pepper: the argon2 password is ``HMAC-SHA256(key, verification_id | code)``. A copy of Redis
without ``OTP_SECRET_KEY`` gives an attacker nothing to brute-force offline, and binding the
verification id means a hash cannot be moved onto another verification. Pure CPU work: the
service runs it in a thread pool, never on the event loop.
"""

from __future__ import annotations

import hashlib
import hmac

import argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Parameters:
    """argon2id cost; the defaults are OWASP's minimum (t=2, m=19 MiB, p=1)."""

    __slots__ = ("memory_kib", "parallelism", "time_cost")

    def __init__(self, time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1) -> None:
        self.time_cost = time_cost
        self.memory_kib = memory_kib
        self.parallelism = parallelism


class CodeHasher:
    """Hash and verify one-time codes with a keyed argon2id."""

    def __init__(self, pepper: bytes, params: Argon2Parameters) -> None:
        self._pepper = pepper
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )

    def _password(self, verification_id: str, code: str) -> bytes:
        message = f"{verification_id}|{code}".encode()
        return hmac.new(self._pepper, message, hashlib.sha256).digest()

    def hash(self, verification_id: str, code: str) -> str:
        """Return the PHC string of the keyed code (salted, so equal codes hash differently)."""
        return self._hasher.hash(self._password(verification_id, code))

    def matches_any(self, verification_id: str, code: str, hashes: list[str]) -> bool:
        """Tell whether ``code`` matches one of ``hashes``, newest first.

        Every hash is tried until one matches: a miss costs one argon2 run per stored hash,
        which is what bounds ``max_sends``.
        """
        password = self._password(verification_id, code)
        for encoded in reversed(hashes):
            try:
                if self._hasher.verify(encoded, password):
                    return True
            except (VerificationError, InvalidHashError):
                continue
        return False
