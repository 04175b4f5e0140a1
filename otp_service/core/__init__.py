"""The pure core: no I/O, no asyncio, no Redis, httpx or Litestar; time and randomness come in."""
