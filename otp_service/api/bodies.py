"""Request bodies: JSON only, read whole, converted to the handler's struct with exact types.

Litestar reads a handler's ``data`` through ``Request.json()`` and then converts the plain
values to the handler's type with ``strict=False``, which takes ``"6"`` and ``6.0`` for the
integer 6, and it reads any ``Content-Type`` as JSON. ``JsonRequest`` (the app's request
class) replaces that one step for every route with a body, so no route can forget it:

- the body must be declared JSON (``is_json``), else 415 ``unsupported_media_type``: a
  form or ``text/plain`` post is a client mistake (or a browser's cross-site "simple"
  request, which needs no CORS preflight), not something to guess at;
- it must parse as JSON as a whole (``core.json_body``), else 400 ``malformed_json``;
- it is converted with ``strict=True``, so a value of the wrong JSON type is a 422 with the
  same field errors as any other invalid field. The handler gets the struct itself, which
  Litestar's own conversion then passes through unchanged.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from otp_service.core.json_body import parse_json_body
from otp_service.core.validation import every_error
from otp_service.errors import MalformedBody, UnsupportedMediaType

JSON_MEDIA_TYPES = "`application/json` (charset, if given, `utf-8`) or any `application/*+json`"
"""The media types a body may be declared as, in the words the OpenAPI document uses."""


def is_json(content_type: str | None) -> bool:
    """Tell whether a ``Content-Type`` declares a JSON body.

    ``application/json`` and the structured-syntax suffix ``+json`` (RFC 6839, e.g.
    ``application/merge-patch+json``) both say the bytes are JSON. JSON is UTF-8 (RFC 8259),
    so a ``charset`` parameter naming anything else would mean other bytes than we read.
    """
    if content_type is None:
        return False
    media_type, *parameters = content_type.split(";")
    kind, _, subtype = media_type.strip().lower().partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def decode_body(body: bytes, body_type: object) -> object:
    """Parse ``body`` as JSON and convert it to ``body_type`` with exact types.

    Raises:
        MalformedBody: not JSON (syntax, UTF-8, nesting).
        ValidationException: JSON of the wrong shape, listing every bad field (msgspec's
            first error first); the problem handler turns it into a 422.
    """
    value = parse_json_body(body)
    try:
        return msgspec.convert(value, body_type, strict=True)
    except RecursionError as exc:
        raise MalformedBody("the request body is nested too deeply") from exc
    except msgspec.ValidationError as exc:
        found = every_error(value, body_type, exc)
        extra = [{"field": bad.field, "message": bad.message} for bad in found]
        raise ValidationException(str(exc), extra=extra) from exc


class JsonRequest(Request[Any, Any, Any]):
    """The app's request class: its ``json()`` is where every handler's ``data`` comes from."""

    async def json(self) -> object:
        """Return the body as the handler's ``data`` type (``Any`` for a route with none).

        Raises:
            UnsupportedMediaType: the body is not declared JSON.
            MalformedBody: it is not JSON.
            ValidationException: it does not fit the handler's type.
        """
        if not is_json(self.headers.get("content-type")):
            raise UnsupportedMediaType(f"send the body as {JSON_MEDIA_TYPES.replace('`', '')}")
        field = self.route_handler.parsed_data_field
        return decode_body(await self.body(), Any if field is None else field.annotation)
