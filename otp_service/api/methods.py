"""``Allow`` on OPTIONS answers: every method of the path, not only the first registered.

Litestar 2 builds a path's automatic OPTIONS handler together with the path's first route
and keeps it when later handlers join the path, so its ``Allow`` header lists only the
methods known then (litestar#4169, fixed in Litestar 3): ``OPTIONS /admin/tenants/{id}``
said ``OPTIONS, PATCH`` although GET works. The app's route map holds every method, so this
hook rewrites the header from it. (A 405 already names them all: see ``problems``.)
"""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope


async def complete_allow(message: Message, scope: Scope) -> None:
    """``before_send`` hook: list all the path's methods in an OPTIONS answer's ``Allow``."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    headers = MutableScopeHeaders.from_message(message)
    if "allow" not in headers:
        return
    app: Litestar = scope["litestar_app"]
    methods = {
        method
        for path in scope["route_handler"].paths
        for method in app.route_handler_method_map.get(path, {})
    }
    headers["allow"] = ", ".join(sorted(methods))
