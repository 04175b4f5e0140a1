"""Telnyx's default opt-out keywords, read from inbound texts (``core.keywords``)."""

from __future__ import annotations

import pytest

from otp_service.core.keywords import keyword_of


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "STOPALL",
        "STOP ALL",
        "stop  all",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "\tquit\n",
    ],
)
def test_opt_out_keywords_ignore_case_and_surrounding_spaces(text: str) -> None:
    """Each of Telnyx's opt-out keywords opts out, whatever its case and spacing."""
    assert keyword_of(text) == "opt_out"


@pytest.mark.parametrize("text", ["START", "start", " Unstop "])
def test_start_and_unstop_opt_back_in(text: str) -> None:
    """START and UNSTOP lift an opt-out."""
    assert keyword_of(text) == "opt_in"


def test_help_asks_for_help() -> None:
    """HELP is recognised as its own keyword."""
    assert keyword_of(" help ") == "help"


@pytest.mark.parametrize(
    "text",
    ["STOP please", "please stop", "STOPP", "ST OP", "", "   ", "ſtop", "ＳＴＯＰ", "Hello"],
)
def test_anything_but_exactly_one_keyword_is_none(text: str) -> None:
    """Sentences, near misses, empty texts and Unicode look-alikes are no keyword."""
    assert keyword_of(text) is None
