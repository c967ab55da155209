"""The query API under ``/api/v1``: projects, runs, series, logs, files, compare, delete.

    GET /api/v1/projects
    GET /api/v1/projects/{project}/runs
    GET /api/v1/projects/{project}/runs/{run}/series?keys=train/loss&x=step&points=1000
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.responses import Response

from stepline.errors import RunNotFoundError
from stepline.logbook import layout
from stepline.params import flatten
from stepline.server.cache import RunCache
from stepline.server.downsample import MIN_POINTS, keep_extremes
from stepline.server.responses import json_response, number_list
from stepline.server.store import LogbookStore

router = APIRouter(prefix="/api/v1")
X_AXES = ("step", "epoch", "time")
MAX_POINTS = 100_000


def _store(request: Request) -> LogbookStore:
    return request.app.state.store  # type: ignore[no-any-return]


@router.get("/projects", summary="Projects with their run counts and last activity")
def projects(request: Request) -> Response:
    found = _store(request).projects()
    token = getattr(request.state, "token", None)
    if token is not None:
        found = [p for p in found if token.allows(p["name"])]
    return json_response({"projects": found})


@router.get("/projects/{project}/runs", summary="A project's runs: status, times, tags, params, metric summaries")
def runs(request: Request, project: str) -> Response:
    return json_response({"runs": _store(request).runs(project)})


@router.get("/projects/{project}/runs/{run_id}", summary="One run: metadata, params, summary, metric summaries")
def run(request: Request, project: str, run_id: str) -> Response:
    store = _store(request)
    cache = store.run(project, run_id)
    meta = dict(cache.meta)
    return json_response({**store.overview(cache), "meta": meta, "summary": meta.get("summary") or {},
                          "error": meta.get("error")})


@router.get("/projects/{project}/runs/{run_id}/metrics", summary="A run's metric keys")
def metric_keys(request: Request, project: str, run_id: str) -> Response:
    return json_response({"keys": list(_store(request).run(project, run_id).series)})


@router.get("/projects/{project}/runs/{run_id}/series", summary="Points of some metrics, downsampled on request")
def series(
    request: Request,
    project: str,
    run_id: str,
    keys: str = Query(..., description="comma-separated metric keys"),
    x: str = Query("step", description="step | epoch | time"),
    points: int = Query(1000, ge=MIN_POINTS, le=MAX_POINTS, description="at most this many points per series"),
    raw: bool = Query(False, description="every point, no downsampling"),
    after: int = Query(0, ge=0, description="only points after this many (a live page's cursor)"),
) -> Response:
    cache = _store(request).run(project, run_id)
    return json_response({"run": run_id, "series": [_series(cache, key, x, points, raw, after)
                                                    for key in _keys(keys)]})


@router.get("/projects/{project}/runs/{run_id}/logs", summary="Log lines, paged, optionally of one level")
def logs(request: Request, project: str, run_id: str, level: str | None = None,
         offset: int = Query(0, ge=0), limit: int = Query(200, ge=1, le=10_000)) -> Response:
    lines = _store(request).run(project, run_id).logs
    if level:
        lines = [line for line in lines if line.get("level") == level.upper()]
    page = [{"time": r.get("time"), "level": r.get("level"), "message": r.get("message"),
             "context": r.get("context") or {}} for r in lines[offset: offset + limit]]
    return json_response({"total": len(lines), "offset": offset, "logs": page})


@router.get("/projects/{project}/runs/{run_id}/files", summary="The run's files")
def files(request: Request, project: str, run_id: str) -> Response:
    cache = _store(request).run(project, run_id)
    base = cache.path / layout.FILES_DIR
    listed = [{"path": name, "size": (base / name).stat().st_size} for name in layout.list_files(base)]
    return json_response({"files": listed})


@router.get("/projects/{project}/runs/{run_id}/files/{path:path}", summary="Download one file")
def download(request: Request, project: str, run_id: str, path: str) -> FileResponse:
    cache = _store(request).run(project, run_id)
    target = layout.file_path(cache.path, path)  # validated: no '..', no absolute path
    base = (cache.path / layout.FILES_DIR).resolve()
    resolved = target.resolve()
    if not resolved.is_relative_to(base) or not resolved.is_file():  # a symlink pointing out is refused too
        raise RunNotFoundError(f"run {run_id} has no file {path!r}")
    return FileResponse(resolved, filename=resolved.name)


@router.delete("/projects/{project}/runs/{run_id}", summary="Delete a run (force=true for a running one)")
def delete_run(request: Request, project: str, run_id: str, force: bool = False) -> Response:
    _store(request).delete_run(project, run_id, force=force)
    request.app.state.ingest.forget(layout.run_dir(_store(request).root, project, run_id))
    return json_response({"deleted": run_id})


@router.delete("/projects/{project}", summary="Delete a project and all its runs")
def delete_project(request: Request, project: str, force: bool = False) -> Response:
    count = _store(request).delete_project(project, force=force)
    request.app.state.ingest.forget_project(layout.project_dir(_store(request).root, project))
    return json_response({"deleted": project, "runs": count})


@router.get("/projects/{project}/compare", summary="Several runs' series and the params that differ")
def compare(request: Request, project: str, runs: str = Query(..., description="comma-separated run ids"),
            keys: str | None = None, x: str = "step",
            points: int = Query(1000, ge=MIN_POINTS, le=MAX_POINTS)) -> Response:
    store = _store(request)
    caches = [store.run(project, run_id) for run_id in _keys(runs)]
    wanted = _keys(keys) if keys else sorted({key for cache in caches for key in cache.series})
    return json_response({
        "runs": [{**store.overview(cache), "series": [_series(cache, key, x, points, False, 0)
                                                      for key in wanted if key in cache.series]}
                 for cache in caches],
        "params_diff": params_diff([cache.params for cache in caches]),
    })


def params_diff(params: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The flattened params keys whose values are not the same in every run, with each run's value."""
    flat = [flatten(p) for p in params]
    keys = sorted({key for f in flat for key in f})
    missing = object()
    diff = {}
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            diff[key] = [None if v is missing else v for v in values]
    return diff


def _keys(text: str) -> list[str]:
    return [key for key in (part.strip() for part in text.split(",")) if key]


def _series(cache: RunCache, key: str, x: str, points: int, raw: bool, after: int) -> dict[str, Any]:
    if x not in X_AXES:
        raise ValueError(f"x={x!r} must be one of {', '.join(X_AXES)}")
    found = cache.series.get(key)
    if found is None:
        return {"key": key, "count": 0, "downsampled": False, "x": [], "y": [], "step": []}
    steps, values, times, epochs = found.arrays()
    total = len(values)
    if after:
        steps, values, times, epochs = steps[after:], values[after:], times[after:], epochs[after:]
    xs = {"step": steps, "epoch": epochs, "time": times}[x]
    keep = np.arange(len(values)) if raw else keep_extremes(values, points)
    downsampled = len(keep) < len(values)
    if downsampled:
        xs, values, steps = xs[keep], values[keep], steps[keep]
    return {"key": key, "count": total, "downsampled": downsampled, "x": number_list(xs), "y": number_list(values),
            "step": steps.astype(np.int64).tolist()}
