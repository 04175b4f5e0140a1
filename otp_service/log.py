"""Logging for the processes the CLI runs: one plain line per event, to stderr.

Nothing the service logs carries a code or a full phone number (numbers go through
``core.phone.mask``), nor a tenant's event URL whole: httpx logs every request's URL at INFO,
credentials and query included, and a tenant's URL may carry ``user:password@`` or a token.
So httpx's per-request lines are kept off (WARNING and above still show), and the service
logs its own lines instead: the Telnyx client's sends (``usecases.delivery``) and the event
poster's deliveries, which name only the receiver's origin.
"""

from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Send the service's logs to stderr at ``level``; httpx's request lines stay off."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
