"""The app factory: ``create_app(store)`` serves the query and ingest APIs and the dashboard over a store.

    app = create_app(LogbookStore("stepline_logs"), require_token=False)
    uvicorn.run(app, host="127.0.0.1", port=8683)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stepline import events
from stepline.errors import ConflictError, NotFoundError, PayloadTooLargeError, SteplineError
from stepline.server import ingest, lmtracker, trackio
from stepline.server.api import router
from stepline.server.auth import AuthStore, Refusal, bearer_token
from stepline.server.guards import RequestGuard
from stepline.server.responses import json_response
from stepline.server.stores import Store
from stepline.version import __version__

STATIC_DIR = Path(__file__).parent / "static"
MAX_REQUEST_BYTES = 1 << 20  # queries take no large bodies; event batches and uploads have their own limits


def create_app(store: Store, *, auth: AuthStore | None = None, cors_origins: Sequence[str] = (),
               require_token: bool = False, max_request_bytes: int = MAX_REQUEST_BYTES,
               allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """A FastAPI app over ``store``. With ``require_token`` every API call needs a token of ``auth`` (by
    default the users and tokens the store keeps); CORS is off unless ``cors_origins`` names the origins to
    allow; ``allowed_hosts`` (what a loopback server is called) refuses requests for any other Host."""
    app = FastAPI(title="stepline", version=__version__, description="Runs tracked by stepline.")
    app.state.store = store
    app.state.auth = auth or AuthStore(store.accounts())
    app.include_router(router)
    app.include_router(ingest.router)
    app.include_router(lmtracker.router)  # LMTracker's clients authenticate with name:password themselves
    app.state.require_token = require_token
    app.include_router(trackio.router)  # last: its /api/{name} must not shadow the routes above

    def body_limit(path: str, method: str) -> int:
        if path.endswith("/events"):
            return ingest.MAX_EVENTS_BYTES
        if ("/files/" in path or "/media/" in path) and method == "PUT":
            return ingest.MAX_UPLOAD_BYTES
        return max_request_bytes

    def token_check(inner: ASGIApp) -> ASGIApp:
        # Plain ASGI, not @app.middleware("http"): that one passes every request body through streams of its own,
        # a cost per chunk that a 4 MB batch of records paid on every push.
        async def check(scope: Scope, receive: Receive, send: Send) -> None:
            if require_token and scope["type"] == "http" and scope["path"].startswith("/api/v1/"):
                refusal = _refusal(app.state.auth, Request(scope))
                if refusal is not None:
                    await refusal(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return check

    app.add_middleware(token_check)  # type: ignore[arg-type]

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> Response:
        return json_response({"detail": str(error)}, 404)

    @app.exception_handler(PayloadTooLargeError)
    async def too_large(request: Request, error: PayloadTooLargeError) -> Response:
        return json_response({"detail": str(error)}, 413)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        # Where and why, not the input echoed back: it may hold what JSON cannot (a lone surrogate).
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in error.errors()]
        return json_response({"detail": events.escaped(detail)}, 422)

    @app.exception_handler(ConflictError)
    async def conflict(request: Request, error: ConflictError) -> Response:
        return json_response({"detail": str(error)}, 409)

    @app.exception_handler(SteplineError)  # ConfigError and InvalidNameError among them: what the caller sent
    async def bad_request(request: Request, error: SteplineError) -> Response:
        return json_response({"detail": str(error)}, 400)

    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "DELETE"])
    # Outermost: nothing reaches a route (or the token check) before the request passed these.
    app.add_middleware(RequestGuard, limit_for=body_limit, allowed_hosts=allowed_hosts, cors_origins=cors_origins)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    made = app.openapi

    def openapi() -> dict[str, Any]:
        schema = made()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(ingest.openapi_components())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _refusal(auth: AuthStore, request: Request) -> Response | None:
    """401 without a valid bearer token, 403 for a project the token is not for; None lets the request through."""
    token = bearer_token(request.headers.get("authorization", ""))
    parts = request.url.path.split("/")
    project = [parts[4]] if len(parts) > 4 and parts[3] == "projects" else []
    found = auth.authorise(token, project, required=True)
    if isinstance(found, Refusal):
        return json_response({"detail": found.message}, found.status)
    request.state.token = found
    return None
