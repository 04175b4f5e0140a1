"""Use cases: what the service does, over the adapters, with no HTTP in sight.

Each module orchestrates one concern (start and check, tenants, delivery through the sender
chain, Telnyx webhooks, tenant events, fallback, idempotency, opt-out import). They import
``core`` and ``adapters``; ``api`` and the process plumbing import them, never the reverse.
"""
