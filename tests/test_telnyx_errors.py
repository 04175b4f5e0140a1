"""The Telnyx error-code table: one test per row, and how several codes combine."""

from __future__ import annotations

import re

import pytest

from otp_service.core.telnyx_errors import RULES, Reaction, Rule, reaction_to

NEXT = Reaction.NEXT_SENDER
STOP = Reaction.OPTED_OUT
GIVE_UP = Reaction.GIVE_UP

# Written out by hand, not derived from RULES, so that changing a row fails a test.
EXPECTED: list[tuple[str, Reaction]] = [
    ("10001", GIVE_UP),
    ("10002", GIVE_UP),
    ("10004", GIVE_UP),
    ("10009", GIVE_UP),
    ("10010", GIVE_UP),
    ("10011", NEXT),
    ("10015", GIVE_UP),
    ("10016", GIVE_UP),
    ("20001", GIVE_UP),
    ("20002", GIVE_UP),
    ("20003", GIVE_UP),
    ("20008", GIVE_UP),
    ("20012", GIVE_UP),
    ("20013", GIVE_UP),
    ("20017", NEXT),
    ("20100", GIVE_UP),
    ("40001", GIVE_UP),
    ("40002", NEXT),
    ("40003", NEXT),
    ("40004", NEXT),
    ("40005", NEXT),
    ("40006", NEXT),
    ("40007", GIVE_UP),
    ("40008", NEXT),
    ("40009", GIVE_UP),
    ("40010", NEXT),
    ("40011", NEXT),
    ("40012", GIVE_UP),
    ("40013", NEXT),
    ("40014", NEXT),
    ("40015", NEXT),
    ("40016", NEXT),
    ("40017", NEXT),
    ("40018", NEXT),
    ("40019", NEXT),
    ("40020", GIVE_UP),
    ("40100", NEXT),
    ("40300", STOP),
    ("40301", NEXT),
    ("40302", GIVE_UP),
    ("40304", GIVE_UP),
    ("40305", NEXT),
    ("40306", NEXT),
    ("40307", NEXT),
    ("40308", NEXT),
    ("40309", GIVE_UP),
    ("40310", GIVE_UP),
    ("40311", GIVE_UP),
    ("40312", GIVE_UP),
    ("40313", GIVE_UP),
    ("40314", GIVE_UP),
    ("40315", NEXT),
    ("40316", GIVE_UP),
    ("40317", GIVE_UP),
    ("40318", NEXT),
    ("40319", NEXT),
    ("40320", NEXT),
    ("40321", NEXT),
    ("40322", GIVE_UP),
    ("40325", NEXT),
    ("40328", GIVE_UP),
    ("40329", NEXT),
    ("40330", NEXT),
    ("40331", GIVE_UP),
    ("40333", GIVE_UP),
]

# Every code of the table in shared/reference/telnyx-messaging.md §3.3.
REFERENCE_CODES: list[str] = [
    *("10001", "10002", "10004", "10009", "10010", "10011", "10015", "10016"),
    *("20001", "20002", "20003", "20008", "20012", "20013", "20017", "20100"),
    *(f"400{n:02d}" for n in range(1, 21)),
    "40100",
    *("40300", "40301", "40302"),
    *(f"403{n:02d}" for n in range(4, 23)),
    *("40325", "40328", "40329", "40330", "40331", "40333"),
]


@pytest.mark.parametrize(("code", "reaction"), EXPECTED, ids=[code for code, _ in EXPECTED])
def test_row(code: str, reaction: Reaction) -> None:
    """Each code has its expected reaction, alone in the table and through reaction_to."""
    assert RULES[code].reaction is reaction
    assert reaction_to([code]) is reaction


def test_expected_list_is_the_whole_table() -> None:
    """The hand-written list has exactly the table's codes, so no row goes untested."""
    assert [code for code, _ in EXPECTED] == sorted(RULES)


def test_table_covers_the_reference() -> None:
    """Every code of the reference's §3.3 table has a row."""
    assert sorted(set(REFERENCE_CODES) - set(RULES)) == []


@pytest.mark.parametrize(
    "codes",
    [
        ["40300", "40001"],
        ["40001", "40300"],
        ["40008", "40300", "10009"],
        ["99999", "40300"],
    ],
)
def test_opt_out_wins(codes: list[str]) -> None:
    """An opt-out among the codes wins over every other reaction."""
    assert reaction_to(codes) is STOP


@pytest.mark.parametrize("codes", [["40008", "40001"], ["40001", "40008"], ["99999", "40012"]])
def test_give_up_wins_over_next_sender(codes: list[str]) -> None:
    """A code that gives up wins over codes that would try the next sender."""
    assert reaction_to(codes) is GIVE_UP


def test_several_next_sender_codes() -> None:
    """Codes that all try the next sender combine into trying the next sender."""
    assert reaction_to(["40008", "40305", "40318"]) is NEXT


@pytest.mark.parametrize("code", ["99999", "40303", "47000", "42200", "", "abc"])
def test_unknown_code_tries_the_next_sender(code: str) -> None:
    """A code missing from the table tries the next sender rather than failing the login."""
    assert code not in RULES
    assert reaction_to([code]) is NEXT


def test_no_codes_tries_the_next_sender() -> None:
    """A failure reported without any code tries the next sender."""
    assert reaction_to([]) is NEXT
    assert reaction_to(()) is NEXT


def test_only_40300_opts_out() -> None:
    """40300 is the one opt-out code in the table."""
    assert [code for code, rule in RULES.items() if rule.reaction is STOP] == ["40300"]


def test_rows_are_well_formed() -> None:
    """Every code is five ASCII digits and every rule has a non-empty meaning."""
    for code, rule in RULES.items():
        assert re.fullmatch(r"[0-9]{5}", code, re.ASCII), code
        assert isinstance(rule, Rule)
        assert rule.meaning.strip(), code


def test_table_is_read_only() -> None:
    """RULES cannot be changed at run time."""
    with pytest.raises(TypeError):
        RULES["40300"] = Rule(NEXT, "changed")  # type: ignore[index]
