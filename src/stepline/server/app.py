"""The app factory: ``create_app(store)`` serves the query API and the dashboard over any store.

    app = create_app(LogbookStore("stepline_logs"))
    uvicorn.run(app, host="127.0.0.1", port=8683)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response

from stepline import __version__
from stepline.errors import ConfigError, RunNotFoundError, SteplineError
from stepline.server.api import router
from stepline.server.responses import json_response
from stepline.server.store import LogbookStore

STATIC_DIR = Path(__file__).parent / "static"
MAX_REQUEST_BYTES = 1 << 20  # the query API takes no large bodies


def create_app(store: LogbookStore, *, cors_origins: Sequence[str] = (),
               max_request_bytes: int = MAX_REQUEST_BYTES) -> FastAPI:
    """A FastAPI app over ``store``; CORS is off unless ``cors_origins`` names the origins to allow."""
    app = FastAPI(title="stepline", version=__version__, description="Runs tracked by stepline.")
    app.state.store = store
    app.include_router(router)

    @app.middleware("http")
    async def limit_request_size(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_request_bytes):
            return json_response({"detail": f"request body over {max_request_bytes} bytes"}, 413)
        return await call_next(request)

    @app.exception_handler(RunNotFoundError)
    async def not_found(request: Request, error: RunNotFoundError) -> Response:
        return json_response({"detail": str(error)}, 404)

    @app.exception_handler(ConfigError)
    async def conflict(request: Request, error: ConfigError) -> Response:
        return json_response({"detail": str(error)}, 409 if request.method == "DELETE" else 400)

    @app.exception_handler(SteplineError)
    @app.exception_handler(ValueError)
    async def bad_request(request: Request, error: Exception) -> Response:
        return json_response({"detail": str(error)}, 400)

    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "DELETE"])

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
