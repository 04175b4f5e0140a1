"""otp-service: multi-tenant SMS one-time codes over Telnyx, hashed with argon2id in Redis.

Importing the package has no side effects: no clients, no environment reads.
"""

__version__ = "0.1.0"
