"""The README documents what the code reads: every variable and every tenant setting."""

from __future__ import annotations

from pathlib import Path

import msgspec

from otp_service.core.model import TenantSettings
from otp_service.settings import ENVIRONMENT

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_environment_variable_is_in_the_readme_table() -> None:
    """Each variable load_settings reads has a row with its default in the README."""
    for variable in ENVIRONMENT:
        default = "*(required)*" if variable.default is None else variable.default or "*(empty)*"
        if variable.default:
            default = f"`{default}`"
        assert f"| `{variable.name}` | {default} |" in README, variable.name


def test_every_tenant_setting_is_in_the_readme_table() -> None:
    """Each field of the tenant settings has a row in the README."""
    for field in msgspec.structs.fields(TenantSettings):
        assert f"| `{field.encode_name}` |" in README, field.encode_name


def test_the_readme_opens_with_the_two_commands() -> None:
    """The README starts with the run command and the test command."""
    head = README.split("\n\n", 2)[1]
    assert "scripts/dev" in head
    assert "scripts/test" in head
