"""One-time codes: generation from an injected CSPRNG, and the format check of submitted codes."""

from __future__ import annotations

import random
import re

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def generate_code(rng: random.Random, length: int) -> str:
    """Return ``length`` uniformly random decimal digits.

    ``rng`` is a ``secrets.SystemRandom`` in the service and a seeded ``random.Random`` in
    tests; ``randbelow``-style uniform draws avoid the modulo bias of slicing random bytes.
    """
    return "".join(str(rng.randrange(10)) for _ in range(length))


def is_well_formed(code: str, length: int) -> bool:
    """Tell whether ``code`` is exactly ``length`` ASCII digits (no spaces, no Unicode digits)."""
    return len(code) == length and _DIGITS.fullmatch(code) is not None
