"""JSON responses: orjson, with NaN and infinities written as in the event format (``"NaN"``, ...); and the raw
body of a request, for routes that parse it themselves."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import Depends, Request
from starlette.responses import Response

_NAMES = {math.inf: "Infinity", -math.inf: "-Infinity"}


async def _raw_body(request: Request) -> bytes:
    return await request.body()


# A route given the body this way can be a plain ``def``, which FastAPI runs off the event loop: what it then
# asks of the store (a database round trip, a file read) blocks no other request.
RawBody = Annotated[bytes, Depends(_raw_body)]


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(_finite(content)), status_code=status_code, media_type="application/json")


def number_list(values: np.ndarray) -> list[Any]:
    """A float array as a JSON-ready list, non-finite values as their names."""
    listed = values.tolist()
    for index in np.flatnonzero(~np.isfinite(values)).tolist():
        value = listed[index]
        listed[index] = "NaN" if value != value else _NAMES[value]
    return listed


def _finite(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else ("NaN" if value != value else _NAMES[value])
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
