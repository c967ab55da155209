"""Trackio's HTTP API, served by stepline, so ``trackio.init(server_url=...)`` logs into stepline runs.

    GET  /version                        {"version", "api_version": 1}: the real client checks api_version
    POST /api/bulk_log                   {"args": [], "kwargs": {"logs": [...], "hf_token": null}}
    POST /api/bulk_log_system            the same, for system metrics (kept as system/<name>)
    POST /api/get_runs_for_project       {"project"}: the runs, as the client needs them to resume

A body is either ``{"args", "kwargs"}`` (what the client sends) or the plain kwargs; answers are
``{"data": ...}`` or ``{"error": ...}`` (400, 404 for an unknown call), as Trackio's server answers.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from stepline import events
from stepline.errors import InvalidNameError
from stepline.names import check_label, check_project
from stepline.server.auth import Refusal, bearer_token
from stepline.server.responses import RawBody, json_response
from stepline.server.stores.base import IDEMPOTENCY_KEY, RunState, RunWriter
from stepline.version import __version__

router = APIRouter(tags=["Trackio"])
API_VERSION = 1
SOURCE = "trackio"
_SYSTEM_PREFIX = "system/"


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _write_token(request: Request) -> str | None:
    return (request.headers.get("x-trackio-write-token") or request.cookies.get("trackio_write_token")
            or request.query_params.get("write_token"))


@router.get("/version", summary="Trackio: the API version its client checks")
def version() -> Response:
    return json_response({"version": f"stepline-{__version__}", "api_version": API_VERSION})


@router.post("/api/{name}", summary="Trackio: bulk_log, bulk_log_system, get_runs_for_project")
def call(request: Request, name: str, raw: RawBody) -> Response:
    try:
        # Trackio's client writes NaN as a bare NaN, which only Python's json reads.
        body = json.loads(raw or b"{}")
    except ValueError as err:
        return _error(f"the body is not JSON: {err}")
    kwargs = body.get("kwargs", body) if isinstance(body, dict) else {}
    if name in ("bulk_log", "bulk_log_system"):
        logs = kwargs.get("logs")
        projects = {str(e.get("project")) for e in logs if isinstance(e, dict)} if isinstance(logs, list) else set()
        # Trackio's client always sends a write token: once the server has tokens, it must be a valid one.
        refusal = _refusal(request, projects, writes=True)
        return refusal or _bulk_log(request, kwargs, system=name == "bulk_log_system")
    if name == "get_runs_for_project":
        return _refusal(request, {str(kwargs.get("project"))}, writes=False) or _runs_for_project(request, kwargs)
    return _error(f"Unknown API: {name}", 404)


def _refusal(request: Request, projects: set[str], writes: bool) -> Response | None:
    """The server's one authorisation check, with Trackio's ways of sending a token (its write token, or a
    bearer token as stepline's own clients send)."""
    auth, require_token = request.app.state.auth, request.app.state.require_token
    token = _write_token(request) or bearer_token(request.headers.get("authorization", ""))
    found = auth.authorise(token, projects, required=require_token or (writes and auth.has_tokens()))
    if not isinstance(found, Refusal):
        return None
    # Trackio answers an auth error with 400, and its client expects that.
    return _error(f"A valid write token is required: {found.message}" if found.status == 401 else found.message)


def _runs_for_project(request: Request, kwargs: dict[str, Any]) -> Response:
    project = kwargs.get("project")
    try:
        runs = request.app.state.store.runs(check_project(project))
    except InvalidNameError as err:
        return _error(str(err))
    return json_response({"data": [{"name": r["name"], "id": r["id"], "created_at": _iso(r["started_at"])}
                                   for r in runs]})


def _bulk_log(request: Request, kwargs: dict[str, Any], system: bool) -> Response:
    if "logs" not in kwargs:
        return _error("Missing required parameter: logs")
    if "hf_token" not in kwargs:
        return _error("Missing required parameter: hf_token")
    logs = kwargs["logs"]
    if not isinstance(logs, list):
        return _error("logs must be a list")
    for entry in logs:
        if not isinstance(entry, dict):
            return _error("each log must be an object")
        try:
            check_project(entry.get("project"))
            check_label(entry.get("run"), "run")
        except InvalidNameError as err:
            return _error(str(err))
        if not isinstance(entry.get("log_id"), (str, type(None))):
            return _error(f"log_id must be a string (Trackio's client sends a UUID) or null, not {entry['log_id']!r}")
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in logs:  # one transaction a run, its entries in the order sent
        by_run.setdefault((entry["project"], entry["run"]), []).append(entry)
    stored = 0
    for (project, run), entries in by_run.items():
        stored += _writer(request, project, run).append_made(functools.partial(_made, entries, system))
    return json_response({"data": {"stored": stored}})


def _writer(request: Request, project: str, run: str) -> RunWriter:
    now = time.time()
    # Only runs that Trackio clients made: a run pushed another way keeps its own records. Trackio has no run
    # status: such a run reads as finished, ending at its last log.
    return request.app.state.store.open_named(project, run, SOURCE, {
        "name": run, "status": "finished", "created_at": now, "started_at": now, "ended_at": now,
        "heartbeat_at": now, "source": SOURCE, "tags": [SOURCE]})


def _made(entries: list[dict[str, Any]], system: bool,
          run: RunState) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The records of one run's entries, numbered from what the run holds; an entry whose log id the run has
    is a batch sent again, and is skipped."""
    seen = run.stored_keys([e["log_id"] for e in entries if e.get("log_id") is not None])
    seq, now, meta = run.next_seq, time.time(), dict(run.meta)
    has_config = run.max_seq[events.PARAMS] > 0
    prefix = _SYSTEM_PREFIX if system else ""
    records: list[dict[str, Any]] = []
    for entry in entries:
        log_id = entry.get("log_id")
        if log_id is not None and log_id in seen:
            continue
        config = entry.get("config")
        if isinstance(config, dict) and config and not has_config:  # config: once per run
            records.append({"type": events.PARAMS, "seq": seq, "time": now, "op": "set", "data": config})
            seq, has_config = seq + 1, True
        values = {f"{prefix}{k}": _number(v) for k, v in (entry.get("metrics") or {}).items()}
        values = {k: v for k, v in values.items() if v is not None}  # stepline keeps numbers; media stay out
        if values:
            step = entry.get("step")
            if not isinstance(step, int):  # null: the run's largest step + 1, as in Trackio
                step = meta.get("trackio_next_step", 0)
            record: dict[str, Any] = {"type": events.METRICS, "seq": seq, "time": now, "step": step,
                                      "values": values}
            if log_id is not None:
                record[IDEMPOTENCY_KEY] = log_id  # Trackio's log_id is the record's idempotency key
            records.append(record)
            seq += 1
            meta.update(ended_at=now, heartbeat_at=now,
                        trackio_next_step=max(step + 1, meta.get("trackio_next_step", 0)))
        if log_id is not None:
            seen.add(log_id)
    return records, meta if meta != run.meta else None


def _number(value: Any) -> float | int | bool | None:
    """A Trackio metric value as a number: its client writes NaN and infinities as "NaN", "Infinity"."""
    if isinstance(value, str):
        return events.NON_FINITE_NAMES.get(value)
    if isinstance(value, bool) or (isinstance(value, float)):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    return None


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None or not math.isfinite(timestamp):
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()
