"""A protocol double of LMTracker, which cannot be built here (its crates are not reachable).

It follows what ../shared/PEERS.md and the seed say of LMTracker exactly: raw `name:password` auth (401
`{"ok": false}`), the project must exist before a push (400 "No such file or directory (os error 2)"),
the first push fixes the run's keys and JSON types (400 "Invalid schema" after), extra top-level fields
ignored, names with \\ / : * ? " < > | NUL refused (400 "Invalid name"), lists oldest first, and
create-project on an existing project answering as `fs::create_dir` does (400 "File exists (os error 17)").
"""

from __future__ import annotations

import re
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.server.conftest import ThreadedApp

USER, PASSWORD = "ana", "pa:ss"
_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00]')


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def build_app() -> FastAPI:
    app = FastAPI()
    projects: dict[str, dict[str, dict]] = {}  # project -> run -> {"schema", "metrics", "modified_at"}
    app.state.projects = projects

    def authorised(request: Request) -> bool:
        name, _, password = request.headers.get("authorization", "").partition(":")
        return (name, password) == (USER, PASSWORD)

    def fail(message=None, status=400):
        return JSONResponse({"ok": False, **({"message": message} if message else {})}, status)

    @app.get("/api/check-user")
    def check_user(request: Request):
        return {"ok": True} if authorised(request) else fail(status=401)

    @app.post("/api/{route}")
    async def call(route: str, request: Request):
        if not authorised(request):
            return fail(status=401)
        body = await request.json() if await request.body() else {}
        if route == "create-project":
            name = body.get("name", "")
            if not name or _BAD_NAME.search(name):
                return fail("Invalid name")
            if name in projects:
                return fail("File exists (os error 17)")
            projects[name] = {}
            return {"ok": True}
        if route == "push-metrics":
            project, run, metrics = body.get("project_name", ""), body.get("run_name", ""), body.get("metrics")
            if _BAD_NAME.search(project) or _BAD_NAME.search(run) or not run:
                return fail("Invalid name")
            if project not in projects:
                return fail("No such file or directory (os error 2)")
            schema = {k: _kind(v) for k, v in metrics.items()}
            existing = projects[project].setdefault(run, {"schema": schema, "metrics": []})
            if existing["schema"] != schema:
                return fail("Invalid schema")
            existing["metrics"].append(metrics)
            existing["modified_at"] = int(time.time())
            return {"ok": True}
        if route == "get-run":
            run = projects.get(body.get("project_name"), {}).get(body.get("run_name"))
            return {"ok": True, "metrics": run["metrics"]} if run else fail("Run not found")
        if route == "get-runs":
            runs = projects.get(body.get("project_name"), {})
            return {"ok": True, "runs": [{"name": n, "modified_at": r.get("modified_at", 0)} for n, r in runs.items()]}
        if route == "get-projects":
            return {"ok": True, "projects": [{"name": n, "modified_at": 0} for n in projects]}
        return JSONResponse({"ok": False}, 404)

    return app


class LMTrackerDouble(ThreadedApp):
    def __init__(self) -> None:
        super().__init__(build_app())

    @property
    def backend(self) -> str:
        return f"lmtracker+http://{USER}:{PASSWORD.replace(':', '%3A')}@127.0.0.1:{self.port}"
