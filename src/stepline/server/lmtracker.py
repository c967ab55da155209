"""LMTracker's API, served by stepline: clients written for LMTracker work against a stepline server.

    POST /api/create-project {"name"}                      POST /api/get-projects
    POST /api/push-metrics {"project_name", "run_name", "metrics"}
    POST /api/get-run {"project_name", "run_name"}         POST /api/get-runs {"project_name"}
    POST /api/delete-run {"project_name", "run_name"}      POST /api/delete-project {"name"}
    GET  /api/check-user

Every call needs ``Authorization: name:password`` of a stepline user (``stepline server user add NAME
--password``). What arrives is an ordinary stepline run. Two differences from LMTracker, so that its own
Trainer example works as its README says: a push with other keys than the first lands too (LMTracker
answers "Invalid schema"), and a ``step`` sent at the top level of the push is the point's step (LMTracker
ignores it and counts pushes). A value that is not a number is refused, with "Invalid schema" when the key
held numbers before.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from stepline import events
from stepline.errors import InvalidNameError
from stepline.names import check_name, check_project
from stepline.server.responses import RawBody, json_response
from stepline.server.stores.base import RunState
from stepline.values import INT64_MAX

router = APIRouter(prefix="/api", include_in_schema=True, tags=["LMTracker"])
SOURCE = "lmtracker"


def _ok(**fields: Any) -> Response:
    return json_response({"ok": True, **fields})


def _fail(message: str | None = None, status: int = 400) -> Response:
    return json_response({"ok": False, **({"message": message} if message else {})}, status)


def _user(request: Request) -> str | None:
    """The user named by ``Authorization: name:password`` (split at the first ':'), when the password is right."""
    header = request.headers.get("authorization", "")
    name, _, password = header.partition(":")
    if not name or not password or not request.app.state.auth.check_password(name, password):
        return None
    return name


def _parsed(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _checked(request: Request, raw: bytes, *fields: str) -> list[str] | Response:
    """The named body fields, checked as names, once the credentials are; a Response is LMTracker's refusal."""
    if not _user(request):
        return _fail(status=401)
    body = _parsed(raw)
    try:
        return [(check_project if field in ("name", "project_name") else check_name)(body.get(field), field)
                for field in fields]
    except InvalidNameError:
        return _fail("Invalid name")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _find_run(request: Request, project: str, run_name: str) -> dict[str, Any] | None:
    """The ``meta`` of the LMTracker run of this name: only runs that LMTracker clients made (a run pushed
    another way keeps its own records)."""
    runs = [meta for meta in request.app.state.store.runs_named(project, run_name) if SOURCE in meta.get("tags", ())]
    return runs[-1] if runs else None


@router.get("/check-user", summary="LMTracker: check the credentials")
def check_user(request: Request) -> Response:
    return _ok() if _user(request) else _fail(status=401)


@router.post("/create-project", summary="LMTracker: create a project")
def create_project(request: Request, raw: RawBody) -> Response:
    names = _checked(request, raw, "name")
    if isinstance(names, Response):
        return names
    request.app.state.store.create_project(names[0])
    return _ok()


@router.post("/push-metrics", summary="LMTracker: append one metrics object to a run (created on first push)")
def push_metrics(request: Request, raw: RawBody) -> Response:
    names = _checked(request, raw, "project_name", "run_name")
    if isinstance(names, Response):
        return names
    project, run_name = names
    body = _parsed(raw)
    metrics = body.get("metrics")
    if not isinstance(metrics, dict):
        return _fail("Invalid schema")
    store = request.app.state.store
    if not store.has_project(project):
        return _fail("No such file or directory (os error 2)")  # LMTracker's own answer
    schema = {key: _json_type(value) for key, value in metrics.items()}
    values = {k: v for k, v in metrics.items() if k != "step"}
    if not all(schema[k] in ("number", "bool") for k in values):  # refused before a first push makes a run
        existing = _find_run(request, project, run_name)
        if existing is not None and any((existing.get("lmtracker_schema") or {}).get(k) not in (None, schema[k])
                                        for k in values):
            return _fail("Invalid schema")  # LMTracker's answer to a type that changed
        return _fail("stepline keeps numbers only: every metric must be a number or a boolean")
    step, epoch = _step(body, metrics), body.get("epoch")
    now = time.time()
    # LMTracker has no run status and no end: such a run reads as finished, ending at its last push.
    writer = store.open_named(project, run_name, SOURCE, {
        "name": run_name, "status": "finished", "created_at": now, "started_at": now, "ended_at": now,
        "heartbeat_at": now, "source": SOURCE, "user": _user(request), "lmtracker_schema": schema, "tags": [SOURCE]})

    def push(run: RunState) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # Such a run holds metrics records only, so the next seq is also the push count: LMTracker's x-axis,
        # used when the client sends no step of its own.
        seq, now = run.next_seq, time.time()
        record = {"type": events.METRICS, "seq": seq, "time": now, "step": seq - 1 if step is None else step,
                  "values": values}
        if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
            record["epoch"] = epoch
        # Unlike LMTracker, a push with other keys lands too (a Trainer's eval and train logs share a run):
        # the run's schema is the union of the keys it was sent, for get-run's answer.
        known = run.meta.get("lmtracker_schema") or {}
        return [record], {**run.meta, "ended_at": now, "heartbeat_at": now, "lmtracker_schema": {**schema, **known}}

    writer.append_made(push)
    return _ok()


def _step(body: dict[str, Any], metrics: dict[str, Any]) -> int | None:
    """The step the client sent: at the top level of the push (as LMTracker's own Trainer example sends it,
    and LMTracker ignores), or as ``metrics.step``; None for none."""
    for step in (body.get("step"), metrics.get("step")):
        if isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= INT64_MAX:
            return step
    return None


@router.post("/get-run", summary="LMTracker: a run's metrics objects, in push order")
def get_run(request: Request, raw: RawBody) -> Response:
    names = _checked(request, raw, "project_name", "run_name")
    if isinstance(names, Response):
        return _fail("Run not found") if names.status_code == 400 else names
    project, run_name = names
    found = _find_run(request, project, run_name)
    if found is None:
        return _fail("Run not found")
    with_step = "step" in (found.get("lmtracker_schema") or {})
    rows = [{**values, "step": step} if with_step else values
            for step, values in request.app.state.store.metric_rows(project, found["id"])]
    return _ok(metrics=rows)


@router.post("/delete-run", summary="LMTracker: delete a run")
def delete_run(request: Request, raw: RawBody) -> Response:
    names = _checked(request, raw, "project_name", "run_name")
    if isinstance(names, Response):
        return names
    project, run_name = names
    found = _find_run(request, project, run_name)
    if found is None:
        return _fail("Run not found")
    request.app.state.store.delete_run(project, found["id"], force=True)
    return _ok()


@router.post("/delete-project", summary="LMTracker (undocumented): delete a project")
def delete_project(request: Request, raw: RawBody) -> Response:
    names = _checked(request, raw, "name")
    if isinstance(names, Response):
        return names
    store = request.app.state.store
    if not store.has_project(names[0]):
        return _fail("No such file or directory (os error 2)")
    store.delete_project(names[0], force=True)
    return _ok()


@router.post("/get-projects", summary="LMTracker: projects, oldest first")
def get_projects(request: Request) -> Response:
    if not _user(request):
        return _fail(status=401)
    projects = [{"name": p["name"], "modified_at": int(p["last_activity"])}
                for p in request.app.state.store.projects()]
    return _ok(projects=sorted(projects, key=lambda p: p["modified_at"]))


@router.post("/get-runs", summary="LMTracker: a project's runs, oldest first")
def get_runs(request: Request, raw: RawBody) -> Response:
    names = _checked(request, raw, "project_name")
    if isinstance(names, Response):
        return names
    runs = [{"name": r["name"], "modified_at": int(r["last_activity"] or 0)}
            for r in request.app.state.store.runs(names[0])]
    return _ok(runs=sorted(runs, key=lambda r: r["modified_at"]))
