"""Reading a request body as JSON, all of it, before anything looks at its shape.

msgspec raises three different errors for a body that is not JSON: ``DecodeError`` for bad
syntax, ``UnicodeDecodeError`` for bytes that are not UTF-8, and ``RecursionError`` for
arrays or objects nested deeper than the interpreter's recursion limit. A caller that
catches only the first answers the other two with a 500 and a traceback, so they are
caught here, once, and become the one ``MalformedBody``.

The whole document is parsed before it is converted to a type: a typed decode stops at the
first field of the wrong shape, so it would call a body "invalid" (422) or even accept it
although the bytes after that field are not JSON at all (400).
"""

from __future__ import annotations

import msgspec

from otp_service.errors import MalformedBody


def parse_json_body(body: bytes) -> object:
    """Return the JSON value of ``body`` as plain Python values.

    Raises:
        MalformedBody: a syntax error, invalid UTF-8 or nesting too deep to parse.
    """
    try:
        value: object = msgspec.json.decode(body)
    except UnicodeDecodeError as exc:
        raise MalformedBody("the request body is not UTF-8") from exc
    except RecursionError as exc:
        raise MalformedBody("the request body is nested too deeply") from exc
    except msgspec.DecodeError as exc:
        raise MalformedBody(f"the request body is not valid JSON: {exc}") from exc
    return value
