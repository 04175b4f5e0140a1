"""Swagger UI at ``/schema/swagger`` (and ``/schema``), from files shipped in the package.

Litestar's Swagger page loads Swagger UI's script, styles and favicon from public CDNs, so
it stays blank without network access, as here and in many companies' CI. This page loads
them from ``swagger_ui/`` next to this module, served by the same app under
``/schema/swagger-ui/``: the page asks no other host for anything. The files are Swagger
UI's own build (npm ``swagger-ui-dist``, version in ``swagger_ui/VERSION``), refreshed with
``scripts/vendor-swagger-ui``; the document is OpenAPI 3.1, which Swagger UI reads from 5.0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from litestar import Request, Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS: Final = Path(__file__).with_name("swagger_ui")
"""Swagger UI's files: the bundle, the standalone preset, the CSS and a favicon."""

ASSETS_PATH: Final = "/swagger-ui"
"""Where the files are served, below the OpenAPI router's path (``/schema``)."""


class OfflineSwagger(SwaggerRenderPlugin):
    """Swagger UI whose every asset comes from this service."""

    def __init__(self, schema_path: str) -> None:
        base = f"{schema_path}{ASSETS_PATH}"
        super().__init__(
            js_url=f"{base}/swagger-ui-bundle.js",
            css_url=f"{base}/swagger-ui.css",
            standalone_preset_js_url=f"{base}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{base}/favicon-32x32.png'>",
            path=["/swagger", "/"],
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """Litestar's page, with the online validator off.

        Swagger UI asks ``validator.swagger.io`` to check a document it loads by URL; the
        page embeds the document, so it would not, but nothing is left to chance offline.
        """
        page = super().render(request, openapi_schema)
        anchor = b"dom_id: '#swagger-container',"
        return page.replace(anchor, anchor + b"\n                  validatorUrl: null,", 1)

    def receive_router(self, router: Router) -> None:
        """Add the route of the files next to the page's (and the OAuth2 redirect's)."""
        super().receive_router(router)
        router.register(
            create_static_files_router(
                path=ASSETS_PATH,
                directories=[ASSETS],
                name="swagger-ui",
                cache_control=CacheControlHeader(max_age=86_400, public=True),
            )
        )
