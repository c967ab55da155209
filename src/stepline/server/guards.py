"""What every request must satisfy before a route sees it: an ASGI middleware, so it also holds for bodies
sent in chunks (no Content-Length) and for every route, the peers' APIs included.

    app.add_middleware(RequestGuard, limit_for=limit, allowed_hosts=urls.LOOPBACK_NAMES)

- Body size: over the route's limit is a 413, counted as the body arrives when no length is declared.
- Cross-site writes: a browser may send a "simple" request (``text/plain``, a form) to any address without
  asking first. A write (POST, PUT, PATCH, DELETE) whose ``Origin`` is another site's is refused (403), and
  so is a write with a body in a type a browser sends cross-site unasked (415).
- DNS rebinding: a server bound to loopback answers only requests whose ``Host`` is a loopback name (421).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

WRITES = frozenset(("POST", "PUT", "PATCH", "DELETE"))
# Content types a browser sends to another site without a preflight (the CORS "simple" ones).
SIMPLE_TYPES = frozenset(("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""))


class RequestGuard:
    def __init__(self, app: Any, *, limit_for: Callable[[str, str], int], allowed_hosts: Sequence[str] | None = None,
                 cors_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.limit_for = limit_for
        self.allowed_hosts = tuple(allowed_hosts) if allowed_hosts else None
        self.cors_origins = frozenset(cors_origins)

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        method, path = scope["method"], scope["path"]
        limit = self.limit_for(path, method)
        refusal = self._refusal(method, headers, limit)
        if refusal is not None:
            await _respond(send, *refusal)
            return
        received, started, answered = 0, False, False

        async def counted_receive() -> dict[str, Any]:
            # Past the limit the app is told the client left, and the client gets a 413 from here: the app
            # never reads more of the body (FastAPI would turn an exception while reading into a 400).
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started and not answered:
                        answered = True
                        await _respond(send, 413, f"request body over {limit} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            if answered:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not answered:
                raise  # the app's own failure; one it met because we cut the body off was answered above

    def _refusal(self, method: str, headers: dict[str, str], limit: int) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.allowed_hosts is not None and _hostname(host) not in self.allowed_hosts:
            return 421, (f"this server answers requests for {', '.join(self.allowed_hosts)} only, not {host!r}: "
                         "a page of another site may be trying to reach it (DNS rebinding)")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return 413, f"request body over {limit} bytes"
        if method not in WRITES:
            return None
        origin = headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != host and origin not in self.cors_origins:
            return 403, f"a write from another site ({origin}) is refused: only this server's own pages may write"
        has_body = length not in (None, "0") or "chunked" in headers.get("transfer-encoding", "")
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if has_body and kind in SIMPLE_TYPES:
            return 415, (f"a write needs a Content-Type of application/json (or application/octet-stream for a "
                         f"file), not {kind or 'none'!r}")
        return None


def _hostname(host: str) -> str:
    if host.startswith("["):  # [::1]:8683
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _respond(send: Callable[..., Any], status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
