"""The documents say what the code does.

The README lists every variable and every tenant setting; docs/api.md, the API reference
carried with the code, names only operations and error codes the served OpenAPI document
has, and every one of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import msgspec

from otp_service import errors
from otp_service.core.model import TenantSettings
from otp_service.problems import PROBLEM_CODES, status_of
from otp_service.settings import ENVIRONMENT

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
API = (ROOT / "docs" / "api.md").read_text()
OPENAPI: dict[str, Any] = json.loads((ROOT / "openapi" / "openapi.json").read_text())
DOCS = ("api.md", "architecture.md", "security.md", "operations.md", "twilio.md")

_OPERATION = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s?]*)")
"""An operation as docs/api.md writes it: ``METHOD /path`` in backticks."""
_STATUS_AND_CODES = re.compile(r"\b([45][0-9]{2})((?:\s*(?:\||/|or)?\s*`[a-z][a-z_]*`)+)")
"""A status followed by error codes: ``404 `tenant_not_found` / `api_key_not_found` ``, or
an error table's ``| 404 | `tenant_not_found` |``."""
_CODE = re.compile(r"`([a-z][a-z_]*)`")
_PARAMETER = re.compile(r"\{[^}]*\}")
_SERVED_BESIDE_THE_DOCUMENT = "/schema/"
"""The OpenAPI document itself (and its viewers) are served but are no operation of it."""


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


def _operation(method: str, path: str) -> tuple[str, str]:
    """``(METHOD, path)`` with parameter names erased: ``{id}`` and ``{tenant_id}`` match."""
    return method.upper(), _PARAMETER.sub("{}", path)


def _served_operations() -> set[tuple[str, str]]:
    return {
        _operation(method, path)
        for path, item in OPENAPI["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def _documented_operations() -> set[tuple[str, str]]:
    return {
        _operation(method, path)
        for method, path in _OPERATION.findall(API)
        if not path.startswith(_SERVED_BESIDE_THE_DOCUMENT)
    }


def _documented_codes(text: str) -> dict[str, set[int]]:
    """Each error code written after a status, with the statuses it is written with."""
    found: dict[str, set[int]] = {}
    for status, codes in _STATUS_AND_CODES.findall(text):
        for code in _CODE.findall(codes):
            found.setdefault(code, set()).add(int(status))
    return found


def _error_table() -> dict[str, set[int]]:
    section = API.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    return _documented_codes(section)


def test_every_operation_in_the_api_reference_is_served() -> None:
    """Each ``METHOD /path`` docs/api.md names is an operation of the OpenAPI document."""
    missing = _documented_operations() - _served_operations()
    assert not missing, f"documented in docs/api.md but not served: {sorted(missing)}"


def test_every_served_operation_is_in_the_api_reference() -> None:
    """Each operation of the OpenAPI document is documented in docs/api.md."""
    missing = _served_operations() - _documented_operations()
    assert not missing, f"served but not documented in docs/api.md: {sorted(missing)}"


def test_the_openapi_document_lists_every_code_the_service_can_answer() -> None:
    """``Problem.code``'s enum is built from the code base; the committed document has it."""
    enum = OPENAPI["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert enum == list(PROBLEM_CODES)
    for code in ("verification_not_found", "block_not_found", "rate_limited", "not_found"):
        assert code in enum, code


def test_every_error_code_in_the_api_reference_exists() -> None:
    """Every code docs/api.md writes after a status is one the OpenAPI document lists."""
    enum = set(OPENAPI["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
    documented = _documented_codes(API)
    assert "idempotency_conflict" in documented  # the pattern reads the prose too
    unknown = set(documented) - enum
    assert not unknown, f"docs/api.md names codes the service never answers: {sorted(unknown)}"


def test_every_error_code_the_service_can_answer_is_in_the_error_table() -> None:
    """The Errors table of docs/api.md has a row for each code, with the code's status."""
    table = _error_table()
    missing = set(PROBLEM_CODES) - set(table)
    assert not missing, f"codes missing from docs/api.md's Errors table: {sorted(missing)}"
    statuses = {code: {404} for code in get_args(errors.NotFoundCode)}
    for cls in _error_classes(errors.OtpError):
        if "code" in vars(cls):  # the classes whose code is their own
            statuses[cls.code] = {status_of(cls.__new__(cls))}
    for code, status in statuses.items():
        assert table[code] == status, (code, table[code], status)


def _error_classes(cls: type[errors.OtpError]) -> list[type[errors.OtpError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _error_classes(child))]


def test_the_readme_links_the_documentation() -> None:
    """The README points at the reference in the repository, and at every document."""
    for name in DOCS:
        assert (ROOT / "docs" / name).is_file(), name
        assert f"(docs/{name})" in README, name
    assert "`API.md` (in the project's shared folder)" not in README


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (lower case, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_links_between_the_documents_lead_somewhere() -> None:
    """Every relative link of docs/ names a file that exists, and a heading that it has."""
    for name in DOCS:
        page = ROOT / "docs" / name
        for target in _LINK.findall(page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.is_file(), (name, target)
            if anchor:
                assert anchor in _anchors(linked.read_text()), (name, target)
