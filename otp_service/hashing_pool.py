"""argon2 off the event loop, in a pool of one thread per core.

argon2 is nearly all the CPU of a start or a check. More threads than cores only add
contention and memory (about 20 MiB per hash in flight): measured here, default pools of 6
to 40 threads lose 16-30 % of throughput (``bench/hash_pool.py``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from otp_service.core.hashing import CodeHasher


class HashingPool:
    """Runs a ``CodeHasher`` in a bounded thread pool."""

    def __init__(self, hasher: CodeHasher, threads: int) -> None:
        self._hasher = hasher
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")

    async def hash(self, verification_id: str, code: str) -> str:
        """Hash a code for a verification."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, verification_id, code)

    async def matches_any(self, verification_id: str, code: str, hashes: list[str]) -> bool:
        """Compare a submitted code against a verification's hashes."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._hasher.matches_any, verification_id, code, hashes
        )

    def close(self) -> None:
        """Stop the threads once the work in flight is done."""
        self._executor.shutdown(wait=True, cancel_futures=True)
