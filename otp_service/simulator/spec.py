"""Telnyx's own OpenAPI schemas, used to hold requests (and, in tests, answers) to the spec.

The shipped ``telnyx-openapi-subset.json`` is an unchanged excerpt of Telnyx's OpenAPI 3.1
document, whose schemas are JSON Schema 2020-12. The whole document is registered as one
resource, so the spec's ``#/components/...`` references resolve as they do upstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from otp_service.core.model import SenderType

_DOCUMENT_URI: Final = "urn:telnyx:messaging-openapi-subset"
_E164: Final = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)
_SHORT_CODE: Final = re.compile(r"\+?[0-9]{3,15}", re.ASCII)
_ALPHANUMERIC_ID: Final = re.compile(r"(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9 ]{1,11}", re.ASCII)

TITLES: Final = {
    "10004": "Missing required parameter",
    "10005": "Resource not found",
    "10007": "Unexpected error",
    "10009": "Authentication failed",
    "10011": "Too many requests",
    "10015": "Bad Request",
    "10016": "Phone number must be in +E.164 format",
    "40001": "Not routable",
    "40002": "Blocked as spam - temporary",
    "40003": "Blocked as spam - permanent",
    "40004": "Rejected by destination",
    "40008": "Undeliverable",
    "40012": "Invalid destination number",
    "40300": "Blocked due to STOP message",
    "40305": "Invalid 'from' address",
    "40310": "Invalid 'to' address",
    "40325": "Invalid alphanumeric sender ID",
}
"""Titles of the Telnyx error codes the simulator answers with; others get a generic title."""


def telnyx_error(code: str, detail: str, *, pointer: str | None = None) -> dict[str, Any]:
    """Build one error object shaped like Telnyx's ``messaging_Error``."""
    error: dict[str, Any] = {
        "code": code,
        "title": TITLES.get(code, "Message refused"),
        "detail": detail,
    }
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    return error


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(path: Iterable[str | int]) -> str:
    return "".join(f"/{_escape(str(token))}" for token in path)


class TelnyxSpec:
    """The OpenAPI subset, with a compiled validator per request schema."""

    def __init__(self) -> None:
        text = resources.files(__package__).joinpath("telnyx-openapi-subset.json").read_text()
        self.document: Mapping[str, Any] = json.loads(text)
        self._registry: Registry[Any] = Registry().with_resource(
            _DOCUMENT_URI, DRAFT202012.create_resource(self.document)
        )
        self._requests: dict[str, Draft202012Validator] = {}

    def validator(self, pointer: str) -> Draft202012Validator:
        """Return a validator for the schema at a JSON pointer into the document.

        Formats the spec uses that jsonschema knows (``uuid``) are asserted, not just noted.
        """
        return Draft202012Validator(
            {"$ref": f"{_DOCUMENT_URI}#{pointer}"},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )

    def schema(self, name: str) -> Draft202012Validator:
        """Return a validator for ``#/components/schemas/<name>``."""
        return self.validator(f"/components/schemas/{name}")

    def request_errors(self, path: str, body: object) -> list[dict[str, Any]]:
        """Check a JSON request body against the spec of ``POST <path>``.

        Returns Telnyx-shaped error objects, empty when the body is acceptable: first the
        schema's verdict, then what the spec says only in prose (a non-empty ``text`` for
        SMS, +E.164 addresses, a well-formed sender).
        """
        if path not in self._requests:
            self._requests[path] = self.validator(
                f"/paths/{_escape(path)}/post/requestBody/content/application~1json/schema"
            )
        schema_errors = [
            _from_schema_error(error) for error in self._requests[path].iter_errors(body)
        ]
        if schema_errors or not isinstance(body, dict):
            return schema_errors
        return _prose_errors(path, body)


def _from_schema_error(error: ValidationError) -> dict[str, Any]:
    required, instance = error.validator_value, error.instance
    if error.validator == "required" and isinstance(required, list) and isinstance(instance, dict):
        missing = [name for name in required if name not in instance]
        pointer = _pointer([*error.absolute_path, missing[0]])
        return telnyx_error("10004", f"The '{missing[0]}' parameter is required.", pointer=pointer)
    return telnyx_error("10015", error.message, pointer=_pointer(error.absolute_path))


def _prose_errors(path: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if not body.get("media_urls") and not body.get("text"):
        errors.append(
            telnyx_error("10004", "SMS needs a non-empty 'text' parameter.", pointer="/text")
        )
    if not _E164.fullmatch(body["to"]):
        errors.append(telnyx_error("40310", "'to' must be one +E.164 phone number.", pointer="/to"))
    sender = body.get("from")
    if path == "/messages" and sender is None and "messaging_profile_id" not in body:
        errors.append(
            telnyx_error(
                "10004", "Either 'from' or 'messaging_profile_id' is required.", pointer="/from"
            )
        )
    if sender is not None and not _valid_sender(path, sender):
        code = {"/messages/alphanumeric_sender_id": "40325", "/messages/long_code": "10016"}
        errors.append(
            telnyx_error(
                code.get(path, "40305"), f"'{sender}' is not a valid sender.", pointer="/from"
            )
        )
    return errors


def sender_type_of(body: Mapping[str, Any]) -> SenderType:
    """Tell which kind of sender a ``POST /messages`` uses, from its ``from`` as Telnyx does."""
    sender = body.get("from")
    if sender is None:
        return SenderType.NUMBER_POOL
    if _E164.fullmatch(sender):
        return SenderType.LONG_CODE
    if _SHORT_CODE.fullmatch(sender):
        return SenderType.SHORT_CODE
    return SenderType.ALPHANUMERIC_SENDER_ID


def _valid_sender(path: str, sender: str) -> bool:
    if path == "/messages/long_code":
        return bool(_E164.fullmatch(sender))
    if path == "/messages/short_code":
        return bool(_SHORT_CODE.fullmatch(sender))
    if path == "/messages/alphanumeric_sender_id":
        return bool(_ALPHANUMERIC_ID.fullmatch(sender))
    return bool(
        _E164.fullmatch(sender)
        or _SHORT_CODE.fullmatch(sender)
        or _ALPHANUMERIC_ID.fullmatch(sender)
    )
