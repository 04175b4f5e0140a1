"""The HTTP edge: Litestar controllers that parse, call one use case, and render."""
