"""Telnyx's default opt-out keywords: which inbound texts opt out, opt back in, or ask for help.

Telnyx acts on a text that is exactly one keyword, ignoring case and surrounding spaces
(``telnyx-messaging.md`` §6); a keyword inside a sentence ("STOP please") is not one. The
service mirrors that list, so that its own record agrees with the block rule Telnyx creates
and refuses the send before Telnyx has to.
"""

from __future__ import annotations

from typing import Final, Literal

Keyword = Literal["opt_out", "opt_in", "help"]

_KEYWORDS: Final[dict[str, Keyword]] = {
    "STOP": "opt_out",
    "STOPALL": "opt_out",
    "STOP ALL": "opt_out",
    "UNSUBSCRIBE": "opt_out",
    "CANCEL": "opt_out",
    "END": "opt_out",
    "QUIT": "opt_out",
    "START": "opt_in",
    "UNSTOP": "opt_in",
    "HELP": "help",
}


def keyword_of(text: str) -> Keyword | None:
    """Return what an inbound text asks for, or ``None`` when it is no keyword.

    Runs of whitespace count as one space, so ``"stop  all"`` from a sloppy thumb is
    ``STOP ALL``. Only ASCII texts can match: Unicode case mapping turns look-alikes into
    keyword letters (the long s, U+017F, upper-cases to ``S``), which a carrier would not
    read as STOP.
    """
    words = " ".join(text.split())
    if not words.isascii():
        return None
    return _KEYWORDS.get(words.upper())
