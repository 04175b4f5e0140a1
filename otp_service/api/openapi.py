"""The OpenAPI document: Litestar's paths, with every struct's schema as msgspec renders it.

Litestar renders a msgspec struct from its fields alone and drops much of what the decoder
enforces: ``forbid_unknown_fields`` (no ``additionalProperties: false``, so unknown fields
looked welcome although they are a 422), dict sizes and key patterns (``metadata``'s ten
pairs), docstrings (where cross-field rules are written) and ``extra_json_schema``
(documented-only constraints such as the E.164 pattern). msgspec's own JSON Schema of the
same structs says all of it, so ``refine`` swaps it in for every struct the routes speak;
the document then cannot drift from the decoder.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator
from typing import Any, Final

import msgspec
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    Schema,
    SecurityScheme,
)

from otp_service import __version__
from otp_service.api.schemas import SCHEMA_REF
from otp_service.api.swagger import OfflineSwagger
from otp_service.problems import PROBLEM_JSON


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document served at ``/schema/openapi.json`` (and kept in ``openapi/``)."""
    return OpenAPIConfig(
        title="otp-service",
        version=__version__,
        description="SMS one-time codes over Telnyx, multi-tenant. Reference: docs/api.md.",
        path="/schema",
        # Swagger UI from the package (api/swagger.py), never a CDN; the document as JSON
        # and YAML. Litestar's other viewers load their scripts from CDNs, so are left out.
        render_plugins=[
            OfflineSwagger("/schema"),
            JsonRenderPlugin(),
            YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
        ],
        use_handler_docstrings=True,  # they say what a route does beyond its schema
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(
                    type="http", scheme="bearer", description="A tenant API key"
                ),
                "AdminToken": SecurityScheme(
                    type="http", scheme="bearer", description="OTP_ADMIN_TOKEN"
                ),
            }
        ),
    )


def refine(app: Litestar) -> None:
    """Replace the schemas Litestar made for the app's structs with msgspec's.

    Call once the app is built, before it serves: the document is built here and cached, so
    ``/schema/openapi.json`` and ``otp-service openapi`` both show the refined one.
    """
    document = app.openapi_schema
    _, schemas = msgspec.json.schema_components(_structs(app), ref_template=SCHEMA_REF)
    document.components.schemas = dict(document.components.schemas or {}) | {
        name: _object(schema) for name, schema in schemas.items()
    }
    _drop_foreign_400s(document)


def _drop_foreign_400s(document: OpenAPI) -> None:
    """Drop the 400 Litestar documents, in its own JSON error shape, for any parameter.

    The service never sends that shape: an invalid parameter is a 422 problem (see
    ``problems``), and the routes that can answer 400 (a body that is not JSON) document
    their own ``application/problem+json`` one.
    """
    for item in (document.paths or {}).values():
        for operation in (item.get, item.put, item.post, item.delete, item.patch):
            responses = (operation.responses if operation is not None else None) or {}
            bad_request = responses.get("400")
            if isinstance(bad_request, OpenAPIResponse) and PROBLEM_JSON not in (
                bad_request.content or {}
            ):
                del responses["400"]


def _structs(app: Litestar) -> list[type[msgspec.Struct]]:
    """Every struct a documented route takes or answers with, by name."""
    found: dict[str, type[msgspec.Struct]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not handler.include_in_schema:
                continue
            annotations: list[object] = [handler.parsed_fn_signature.return_type.annotation]
            if handler.parsed_data_field is not None:
                annotations.append(handler.parsed_data_field.annotation)
            annotations += [spec.data_container for spec in (handler.responses or {}).values()]
            for struct in (s for a in annotations for s in _structs_in(a)):
                found.setdefault(struct.__name__, struct)
    return sorted(found.values(), key=lambda struct: struct.__name__)


def _structs_in(annotation: object) -> Iterator[type[msgspec.Struct]]:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _structs_in(argument)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


_FIELDS: Final = {
    field.metadata.get("alias", _camel(field.name)): field.name
    for field in dataclasses.fields(Schema)
}
"""JSON Schema keyword -> ``Schema`` attribute (``additionalProperties`` -> ...)."""

_ONE_SCHEMA: Final = frozenset(
    {"items", "not", "if", "then", "else", "contains", "propertyNames", "additionalProperties"}
)
_SCHEMA_LIST: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_MAP: Final = frozenset({"properties", "patternProperties", "dependentSchemas"})


def _schema(node: dict[str, Any]) -> Schema | Reference:
    """Turn one JSON Schema object (as msgspec writes it) into Litestar's spec objects."""
    return Reference(ref=node["$ref"]) if set(node) == {"$ref"} else _object(node)


def _object(node: dict[str, Any]) -> Schema:
    values: dict[str, Any] = {}
    for keyword, value in node.items():
        if keyword == "$ref":  # a reference with a description or default beside it
            values["all_of"] = [Reference(ref=value)]
            continue
        if keyword in _ONE_SCHEMA and isinstance(value, dict):
            converted: Any = _schema(value)
        elif keyword in _SCHEMA_LIST:
            converted = [_schema(item) for item in value]
        elif keyword in _SCHEMA_MAP:
            converted = {key: _schema(item) for key, item in value.items()}
        elif keyword == "type":
            converted = (
                [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
            )
        elif keyword == "format":
            converted = OpenAPIFormat(value)
        else:
            converted = value
        values[_FIELDS[keyword]] = converted
    return Schema(**values)
