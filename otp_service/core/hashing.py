"""Code hashing: argon2id over an HMAC of the code, so Redis alone is not enough to guess it.

argon2-cffi exposes no argon2 "secret" (K) parameter, so the server secret enters as a
pepper: the argon2 password is ``HMAC-SHA256(key, verification_id | code)``. A copy of Redis
without ``OTP_SECRET_KEY`` gives an attacker nothing to brute-force offline, and binding the
verification id means a hash cannot be moved onto another verification. Pure CPU work: the
service runs it in a thread pool, never on the event loop.

Secret rotation: each stored hash is prefixed with the key id of the secret whose pepper made
it (``<key id>:<PHC string>``, ``core.derive.secret_id``). A check then runs argon2 once per
stored hash with exactly the pepper that made it, so keeping a previous secret during a
rotation costs nothing more per wrong code. A hash without a prefix (made before hashes were
named) is tried with each known pepper, current first; a hash named by a secret no longer
known is skipped without any argon2 work.
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

    def __init__(
        self,
        pepper: bytes,
        params: Argon2Parameters,
        *,
        key_id: str = "",
        previous: tuple[str, bytes] | None = None,
    ) -> None:
        """``key_id`` names ``pepper`` in new hashes ("" makes unnamed ones).

        ``previous`` is the key id and pepper of the secret being rotated out, whose hashes
        are still accepted.
        """
        self._pepper = pepper
        self._key_id = key_id
        self._peppers = [pepper] if previous is None else [pepper, previous[1]]
        self._by_id = {key_id: pepper} if key_id else {}
        if previous is not None:
            self._by_id.setdefault(previous[0], previous[1])
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )

    @staticmethod
    def _password(pepper: bytes, verification_id: str, code: str) -> bytes:
        message = f"{verification_id}|{code}".encode()
        return hmac.new(pepper, message, hashlib.sha256).digest()

    def hash(self, verification_id: str, code: str) -> str:
        """Return the PHC string of the keyed code (salted, so equal codes hash differently).

        It is prefixed with ``<key id>:`` when the hasher has a key id.
        """
        encoded = self._hasher.hash(self._password(self._pepper, verification_id, code))
        return f"{self._key_id}:{encoded}" if self._key_id else encoded

    def _peppers_of(self, stored: str) -> tuple[list[bytes], str]:
        """The peppers that may have made ``stored`` and its PHC string."""
        if stored.startswith("$"):
            return self._peppers, stored
        name, _, encoded = stored.partition(":")
        pepper = self._by_id.get(name)
        return ([] if pepper is None else [pepper]), encoded

    def matches_any(self, verification_id: str, code: str, hashes: list[str]) -> bool:
        """Tell whether ``code`` matches one of ``hashes``, newest first.

        Every hash is tried until one matches: a miss costs one argon2 run per stored hash
        (named by its secret; an unnamed one, one run per known secret), which is what
        bounds ``max_sends``.
        """
        for stored in reversed(hashes):
            peppers, encoded = self._peppers_of(stored)
            for pepper in peppers:
                try:
                    if self._hasher.verify(encoded, self._password(pepper, verification_id, code)):
                        return True
                except (VerificationError, InvalidHashError):
                    continue
        return False
