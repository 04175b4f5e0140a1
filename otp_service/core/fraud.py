"""The fraud guard's detector, which tells whether a destination number range is pumped.

SMS pumping (toll fraud) is bots requesting codes to numbers whose operator pays the attacker
per message. Its two marks are that the traffic goes to a narrow number range, far faster
than that range ever receives codes, and that nobody ever types the codes. Real users type
within seconds to minutes, so a code that is older than ``grace_seconds`` and unused is
evidence; a young code is not.

The detector looks at every prefix of the destination from the country code plus 2 national
digits to plus 6: pumpers work an operator's range (say ``+44791``), usually spread over its
sub-ranges so that no narrow prefix stands out, so the range is seen at whichever length it
lives. For each prefix the start script (``adapters/lua/_lib.lua``, ``fraud_observe``)
keeps, in the tenant's slot, the starts of the last ``window_seconds`` and which of them were
approved, and a slow average of its starts (the range's own baseline). Two rules, either
of which blocks:

- **Velocity** catches fast attacks before any code could have been typed: more starts in
  the last ``velocity_seconds`` than the prefix's floor plus ``velocity_factor`` times its
  baseline. Floors are per prefix length, since a two-digit range of a country legitimately
  sees far more traffic than a six-digit one. A tenant with no history has a zero baseline
  and is protected by the floors alone from its first minute; a legitimate surge in a range
  with history is allowed ``velocity_factor`` times its usual rate.
- **Conversion** catches slow attacks, which velocity cannot tell from real traffic: among
  the starts of the last ``window_seconds`` that are older than the grace, at least
  ``min_unconverted`` unused and at most ``1 - failure_ratio`` of them used. Legitimate
  ranges convert at 60-90%; pumped ones at zero.

A block lasts ``block_seconds``, doubled for each earlier block of the range in the last day
(the attack went on), up to ``max_block_seconds``.

The defaults are what ``bench/pumping.py`` (a day of legitimate traffic and attacks through
the real detector) needs to stop every attack within 30 SMS and refuse no legitimate user.
The conversion rule looks back 6 h, so that an attack that resumes when its block ends is
blocked again at once (its unused codes are still in the window) and the block doubles,
and so that a quiet range's earlier real conversions are still counted. The price is
memory: 6 h of starts per watched prefix (one sorted-set entry per start and prefix).
"""

from __future__ import annotations

import enum
from typing import Annotated, Final

import msgspec
from msgspec import Meta

PREFIX_DIGITS: Final = (2, 3, 4, 5, 6)
"""National digits after the country code in the prefixes watched, shortest first."""


class FraudGuardMode(enum.StrEnum):
    """What the guard does with a block: refuse starts, only record it, or nothing at all."""

    BLOCK = "block"
    MONITOR = "monitor"
    OFF = "off"


def _default_floors() -> list[int]:
    return [120, 60, 20, 20, 20]


class FraudSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The detector's thresholds (the module docstring explains each rule)."""

    velocity_seconds: Annotated[
        int, Meta(ge=10, le=3600, description="The window the velocity rule counts starts in")
    ] = 600
    velocity_floors: Annotated[
        list[Annotated[int, Meta(ge=1, le=1_000_000)]],
        Meta(
            min_length=5,
            max_length=5,
            description="Starts per velocity window always allowed to a prefix of 2, 3, 4, 5"
            " and 6 national digits",
        ),
    ] = msgspec.field(default_factory=_default_floors)
    velocity_factor: Annotated[
        float, Meta(ge=1, le=1000, description="How far above its baseline a range may surge")
    ] = 10.0
    baseline_hours: Annotated[
        int, Meta(ge=1, le=720, description="Time constant of a range's average rate")
    ] = 24
    window_seconds: Annotated[
        int, Meta(ge=300, le=86_400, description="How far back the conversion rule looks")
    ] = 21_600
    grace_seconds: Annotated[
        int, Meta(ge=30, le=3600, description="Age after which an unused code counts as unused")
    ] = 300
    min_unconverted: Annotated[
        int, Meta(ge=1, le=10_000, description="Unused codes before the conversion rule blocks")
    ] = 10
    failure_ratio: Annotated[
        float, Meta(ge=0.5, le=1, description="Share of old codes unused that blocks a range")
    ] = 0.9
    block_seconds: Annotated[int, Meta(ge=60, le=86_400, description="First block of a range")] = (
        900
    )
    max_block_seconds: Annotated[
        int, Meta(ge=60, le=30 * 86_400, description="Longest block, however often repeated")
    ] = 86_400


class PrefixStats(msgspec.Struct, frozen=True, array_like=True):
    """What the start script counted for one prefix, this start included.

    ``recent``: starts in the velocity window; ``baseline``: the starts a velocity window
    usually sees (from the slow average, before this start); ``aged``: starts in the
    conversion window older than the grace; ``unconverted``: those of them not approved;
    ``blocked``: the prefix has a block in force already (of any mode).
    """

    prefix: str
    recent: int
    baseline: float
    aged: int
    unconverted: int
    blocked: bool


class Verdict(msgspec.Struct, frozen=True):
    """Block ``prefix``, because of ``reason`` (words an operator reads)."""

    prefix: str
    reason: str


def prefixes(e164: str, calling_code: int) -> list[str]:
    """The watched prefixes of a number, shortest first (fewer when the number is short)."""
    head = len(str(calling_code)) + 1
    national = len(e164) - head
    return [e164[: head + digits] for digits in PREFIX_DIGITS if digits < national]


def _condemned(index: int, stat: PrefixStats, settings: FraudSettings) -> Verdict | None:
    """The verdict of the first rule that condemns a prefix (at ``index`` in the list)."""
    floor = settings.velocity_floors[min(index, len(settings.velocity_floors) - 1)]
    allowed = floor + settings.velocity_factor * stat.baseline
    if stat.recent > allowed:
        reason = (
            f"{stat.recent} starts in {settings.velocity_seconds} s, "
            f"above the {allowed:.0f} allowed for this range"
        )
        return Verdict(stat.prefix, reason)
    if (
        stat.unconverted >= settings.min_unconverted
        and stat.unconverted >= settings.failure_ratio * stat.aged
    ):
        reason = (
            f"{stat.unconverted} of {stat.aged} codes older than "
            f"{settings.grace_seconds} s were never used"
        )
        return Verdict(stat.prefix, reason)
    return None


def _without(wide: PrefixStats, narrow: PrefixStats) -> PrefixStats:
    """A prefix's counts less those of one of its sub-ranges."""
    return PrefixStats(
        wide.prefix,
        wide.recent - narrow.recent,
        max(wide.baseline - narrow.baseline, 0.0),
        wide.aged - narrow.aged,
        wide.unconverted - narrow.unconverted,
        wide.blocked,
    )


def _explains(narrow: PrefixStats, wide: PrefixStats, index: int, settings: FraudSettings) -> bool:
    """Whether a sub-range holds the case against the prefix at ``index`` that contains it.

    It must hold most of the evidence (more than half of the recent starts, or of the unused
    codes) and the rest alone must not condemn the prefix.
    """
    most = narrow.recent * 2 > wide.recent or narrow.unconverted * 2 > wide.unconverted
    return most and _condemned(index, _without(wide, narrow), settings) is None


def assess(stats: list[PrefixStats], settings: FraudSettings) -> Verdict | None:
    """The range to block after a start, or ``None``.

    The widest prefix a rule condemns is found first, so an attack spread over sub-ranges
    is stopped in one block. A narrower prefix of the start that explains the verdict (it
    holds most of the evidence, and without its starts the wider one would not be
    condemned) takes it over, and if it is not condemned itself yet, nothing is blocked
    until it is: the block goes to the range the attack lives in. Otherwise the live range
    around a narrow attack, tipped over by a few real users who did not type their codes,
    would be blocked with it (a tenant with no history would lose a whole operator's
    range), and a renewed attack would be judged on a wider range than the one blocked
    before, escaping the doubling of its block.

    A start inside a range blocked already is judged no further: ``block`` mode refused it,
    and ``monitor`` mode, which records what ``block`` would do, must not go on to condemn
    the sub-ranges of the range it recorded.
    """
    if any(stat.blocked for stat in stats):
        return None
    for index, stat in enumerate(stats):
        verdict = _condemned(index, stat, settings)
        if verdict is None:
            continue
        chosen = index
        for narrower in range(index + 1, len(stats)):
            if not _explains(stats[narrower], stats[chosen], chosen, settings):
                break
            found = _condemned(narrower, stats[narrower], settings)
            if found is None:
                return None
            verdict, chosen = found, narrower
        return verdict
    return None


def block_ms(strikes: int, settings: FraudSettings) -> int:
    """How long the ``strikes``-th block of a range in a day lasts (1 for the first)."""
    doubled = settings.block_seconds * 2 ** min(max(strikes - 1, 0), 30)
    return int(min(doubled, settings.max_block_seconds) * 1000)


class Block(msgspec.Struct, frozen=True, kw_only=True):
    """A block in force, as operators list it.

    ``limit`` is ``prefix`` (a range the guard condemned) or ``country`` (its daily budget is
    spent). ``strikes`` counts a range's blocks within a day of each other (each lasts twice
    the one before).
    """

    id: str
    limit: str
    value: str
    mode: FraudGuardMode
    reason: str
    created_at: int
    expires_at: int
    strikes: int | None = None


def block_durations_ms(settings: FraudSettings) -> list[int]:
    """How long a range's first, second, ... block lasts, up to the first capped one."""
    durations = [block_ms(1, settings)]
    while durations[-1] < settings.max_block_seconds * 1000:
        durations.append(block_ms(len(durations) + 1, settings))
    return durations
