"""Twilio-style SIDs for the service's own ids, computed both ways, so no index is stored.

An id of ours is ``<prefix>_<26 base32>`` holding 128 bits (``core.ids``); a Twilio SID is
two capital letters and 32 lower-case hex digits, also 128 bits. The SID of an id is the
same bits in hex behind Twilio's prefix for that kind of object, so either is computed from
the other and both stay stable for the object's life:

- tenant ``ten_…``: account ``AC…`` and, as each tenant is one Verify service, service ``VA…``;
- verification ``ver_…``: ``VE…``;
- API key ``key_…``: ``SK…`` (Twilio's API key SIDs, usable as the Basic user name).
"""

from __future__ import annotations

import base64
import re
from typing import Final

_HEX: Final = re.compile(r"[0-9a-f]{32}", re.ASCII)
_BASE32: Final = re.compile(r"[a-z2-7]{26}", re.ASCII)

ACCOUNT: Final = "AC"
SERVICE: Final = "VA"
VERIFICATION: Final = "VE"
API_KEY: Final = "SK"

_OURS: Final = {ACCOUNT: "ten", SERVICE: "ten", VERIFICATION: "ver", API_KEY: "key"}
"""Twilio's SID prefix -> the prefix of our id carrying the same bits."""


def sid_of(twilio_prefix: str, ident: str) -> str:
    """The SID (``twilio_prefix`` + 32 hex) of one of our ids of the matching kind.

    Raises:
        ValueError: ``ident`` is not such an id (the service only converts ids it made).
    """
    prefix, _, body = ident.partition("_")
    if prefix != _OURS[twilio_prefix] or not _BASE32.fullmatch(body):
        raise ValueError(f"not a {_OURS[twilio_prefix]} id: {ident!r}")
    raw = base64.b32decode(body.upper() + "======")
    return twilio_prefix + raw.hex()


def id_of(twilio_prefix: str, sid: str) -> str | None:
    """Our id for a SID of the kind ``twilio_prefix``; ``None`` for anything else.

    Only lower-case hex is read, as the service writes it: a SID is an opaque string to
    Twilio's users, compared as given.
    """
    if not sid.startswith(twilio_prefix) or not _HEX.fullmatch(sid[len(twilio_prefix) :]):
        return None
    raw = bytes.fromhex(sid[len(twilio_prefix) :])
    body = base64.b32encode(raw).decode().rstrip("=").lower()
    return f"{_OURS[twilio_prefix]}_{body}"
