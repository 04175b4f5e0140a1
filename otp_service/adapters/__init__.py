"""Adapters: the one place each external system (Telnyx, Redis) is spoken to."""
