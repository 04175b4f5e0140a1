"""Logging for the processes the CLI runs: one plain line per event, to stderr.

Nothing the service logs carries a code or a full phone number (numbers go through
``core.phone.mask``); this module only sets the format and level.
"""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Send the service's logs to stderr at ``level``."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
