"""A protocol double of LMTracker, which cannot be built here (its Rust crates are not reachable).

Written from LMTracker's source at github.com/omni-devel/lmtracker commit
613f82701a852151d896422b61596d9116a923cd (`src/handlers/api.rs`, `src/database.rs`, `src/data/mod.rs`),
route by route; it could not be run here, so it reproduces the code, not a recorded answer:

- auth: `Authorization` split at every `:`, exactly two parts, or 401 `{"ok": false}` (so a password
  holding `:` never logs in); every route checks it first;
- create-project: names with \\ / : * ? " < > | NUL -> 400 "Invalid name"; otherwise `fs::create_dir`, its
  error ignored: an existing project answers `{"ok": true}`;
- push-metrics: the same name check on project and run; a missing project -> 400 "No such file or directory
  (os error 2)" (the append fails); the run's first line fixes its keys and JSON types (400 "Invalid
  schema" for a push with others); fields beside `metrics` (a `step`) are ignored;
- get-run: the pushed objects, or 400 "Run not found"; get-runs: 400 "No such file or directory (os error
  2)" for a missing project; both lists oldest first;
- delete-run and delete-project: their file-system errors ignored, always `{"ok": true}` (a project that
  still holds runs is not removed: `fs::remove_dir`).
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.server.conftest import ThreadedApp

USER, PASSWORD = "ana", "pa$s w0rd"
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
        parts = request.headers.get("authorization", "").split(":")
        return len(parts) == 2 and tuple(parts) == (USER, PASSWORD)

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
            projects.setdefault(name, {})
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
            if body.get("project_name") not in projects:
                return fail("No such file or directory (os error 2)")
            runs = projects[body["project_name"]]
            return {"ok": True, "runs": [{"name": n, "modified_at": r.get("modified_at", 0)} for n, r in runs.items()]}
        if route == "delete-run":
            projects.get(body.get("project_name"), {}).pop(body.get("run_name"), None)
            return {"ok": True}
        if route == "delete-project":
            if not projects.get(body.get("name"), True):  # remove_dir: only an empty project goes
                projects.pop(body.get("name"))
            return {"ok": True}
        if route == "get-projects":
            return {"ok": True, "projects": [{"name": n, "modified_at": 0} for n in projects]}
        return JSONResponse({"ok": False}, 404)

    return app


class LMTrackerDouble(ThreadedApp):
    def __init__(self) -> None:
        super().__init__(build_app())

    @property
    def backend(self) -> str:
        return f"lmtracker+http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}"
