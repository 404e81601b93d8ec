"""The admin API's JSON request bodies: bounded, and a 400 when they are not JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from collector.web.api.errors import ApiError
from collector.web.body import ClientGone, PayloadTooLarge, request_body

__all__ = ["MAX_BODY", "read_json"]

MAX_BODY = 64 * 1024


async def read_json(request: Request, *, required: bool) -> Any:
    """The JSON body (None when empty and not required); 400 when it is not JSON."""
    try:
        body = await request_body(request, MAX_BODY)
    except PayloadTooLarge:
        raise ApiError(
            413, "payload_too_large", f"the body is larger than {MAX_BODY} bytes"
        ) from None
    except ClientGone:
        raise ApiError(400, "bad_request", "the client went away") from None
    if not body.strip():
        if required:
            raise ApiError(400, "invalid_json", "a JSON object body is required")
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
