"""The query API under ``/api/v1``: projects, runs, series, logs, files, compare, delete.

    GET /api/v1/projects
    GET /api/v1/projects/{project}/runs
    GET /api/v1/projects/{project}/runs/{run}/series?keys=train/loss&x=step&points=1000
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse, Response, StreamingResponse

from stepline.errors import metric_not_found
from stepline.names import check_relative_path
from stepline.params import flatten
from stepline.server import answers, node_parts
from stepline.server.downsample import MIN_POINTS
from stepline.server.responses import json_response, number_list
from stepline.server.stores.base import Axis, SeriesPoints, Store

MAX_POSITION = 2**53  # an offset or cursor past any series or log a store holds, and within every integer type
router = APIRouter(prefix="/api/v1")
MAX_POINTS = 100_000


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


@router.get("/projects", summary="Projects with their run counts and last activity",
            responses=answers.documented(answers.Projects))
def projects(request: Request) -> Response:
    found = _store(request).projects()
    token = getattr(request.state, "token", None)
    if token is not None:
        found = [p for p in found if token.allows(p["name"])]
    return json_response({"projects": found})


@router.get("/projects/{project}/runs", summary="A project's runs: status, times, tags, params, metric summaries",
            responses=answers.documented(answers.Runs))
def runs(request: Request, project: str) -> Response:
    return json_response({"runs": _store(request).runs(project)})


@router.get("/projects/{project}/runs/{run_id}", summary="One run: metadata, params, summary, metric summaries",
            responses=answers.documented(answers.RunDetail))
def run(request: Request, project: str, run_id: str) -> Response:
    found = node_parts.run(_store(request), project, run_id)
    meta = found["meta"]
    return json_response({**found, "summary": meta.get("summary") or {}, "error": meta.get("error")})


@router.get("/projects/{project}/runs/{run_id}/metrics", summary="A run's metric keys",
            responses=answers.documented(answers.MetricKeys))
def metric_keys(request: Request, project: str, run_id: str) -> Response:
    return json_response({"keys": node_parts.metric_keys(_store(request), project, run_id)})


@router.get("/projects/{project}/runs/{run_id}/series", summary="Points of some metrics, downsampled on request",
            responses=answers.documented(answers.Series))
def series(
    request: Request,
    project: str,
    run_id: str,
    keys: str = Query(..., description="comma-separated metric keys"),
    x: Annotated[Axis, Query(description="the x-axis: step, epoch or time")] = "step",
    points: int = Query(1000, ge=MIN_POINTS, le=MAX_POINTS, description="at most this many points per series"),
    raw: bool = Query(False, description="every point, no downsampling"),
    after: int = Query(0, ge=0, le=MAX_POSITION, description="only points after this many (a live page's cursor)"),
) -> Response:
    store = _store(request)
    found = node_parts.series(store, project, run_id, _keys(keys), x, None if raw else points, after)
    if any(not s.count for s in found):  # an empty series: of a key the run has, or a misspelled one?
        known = node_parts.metric_keys(store, project, run_id)
        for missing in (s.key for s in found if not s.count and s.key not in known):
            raise metric_not_found(missing, known, f"run {run_id}")
    return json_response({"run": run_id, "series": [_series_json(s) for s in found]})


@router.get("/projects/{project}/runs/{run_id}/logs", summary="Log lines, paged, optionally of one level",
            responses=answers.documented(answers.Logs))
def logs(request: Request, project: str, run_id: str, level: str | None = None,
         offset: int = Query(0, ge=0, le=MAX_POSITION), limit: int = Query(200, ge=1, le=10_000)) -> Response:
    total, lines = _store(request).logs(project, run_id, level, offset, limit)
    page = [{"time": r.get("time"), "level": r.get("level"), "message": r.get("message"),
             "context": r.get("context") or {}} for r in lines]
    return json_response({"total": total, "offset": offset, "logs": page})


@router.get("/projects/{project}/runs/{run_id}/files", summary="The run's files",
            responses=answers.documented(answers.Files))
def files(request: Request, project: str, run_id: str) -> Response:
    listed = _store(request).files(project, run_id)
    return json_response({"files": [{"path": name, "size": size} for name, size in sorted(listed.items())]})


@router.get("/projects/{project}/runs/{run_id}/files/{path:path}", summary="Download one file")
def download(request: Request, project: str, run_id: str, path: str) -> StreamingResponse:
    size, chunks = _store(request).read_file(project, run_id, check_relative_path(path, "file name"))
    name = path.rsplit("/", 1)[-1]
    return StreamingResponse(chunks, media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                             headers={"content-length": str(size),
                                      "content-disposition": f"attachment; filename*=utf-8''{quote(name)}"})


@router.get("/projects/{project}/runs/{run_id}/media", summary="Media logged (images, histograms, tables, ...)",
            responses=answers.documented(answers.Media))
def media(request: Request, project: str, run_id: str, key: str | None = None,
          after: int = Query(0, ge=0, le=MAX_POSITION)) -> Response:
    """``after=N``: only the records past the first N (a live page's cursor)."""
    base = f"/api/v1/projects/{quote(project, safe='')}/runs/{quote(run_id, safe='')}/media/"
    found = []
    for record in _store(request).media(project, run_id, key)[after:]:
        items = [{**item, "url": base + item["file"].rsplit("/", 1)[-1]} if isinstance(item.get("file"), str) else item
                 for item in record.get("items") or []]
        found.append({"step": record.get("step"), "time": record.get("time"), "key": record.get("key"),
                      "kind": record.get("kind"), "items": items})
    return json_response({"media": found})


@router.get("/projects/{project}/runs/{run_id}/media/{name}", summary="One media file (range requests served)")
def media_file(request: Request, project: str, run_id: str, name: str) -> Response:
    found = _store(request).media_file(project, run_id, name)
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if isinstance(found, Path):
        return FileResponse(found, media_type=kind)
    size, chunks = found
    return StreamingResponse(chunks, media_type=kind, headers={"content-length": str(size)})


@router.delete("/projects/{project}/runs/{run_id}", summary="Delete a run (force=true for a running one)",
               responses=answers.documented(answers.Deleted))
def delete_run(request: Request, project: str, run_id: str, force: bool = False) -> Response:
    node_parts.delete_run(_store(request), project, run_id, force)
    return json_response({"deleted": run_id})


@router.delete("/projects/{project}", summary="Delete a project and all its runs",
               responses=answers.documented(answers.Deleted))
def delete_project(request: Request, project: str, force: bool = False) -> Response:
    count = _store(request).delete_project(project, force=force)
    return json_response({"deleted": project, "runs": count})


@router.get("/projects/{project}/compare", summary="Several runs' series and the params that differ",
            responses=answers.documented(answers.Compare))
def compare(request: Request, project: str, runs: str = Query(..., description="comma-separated run ids"),
            keys: str | None = None, x: Axis = "step",
            points: int = Query(1000, ge=MIN_POINTS, le=MAX_POINTS)) -> Response:
    store = _store(request)
    found = [node_parts.run(store, project, run_id) for run_id in _keys(runs)]
    wanted = _keys(keys) if keys else sorted({key for run in found for key in run["metrics"]})
    for run in found:
        present = [key for key in wanted if key in run["metrics"]]
        run["series"] = [_series_json(s) for s in node_parts.series(store, project, run["id"], present, x, points, 0)]
        del run["meta"]
    return json_response({"runs": found, "params_diff": params_diff([run["params"] for run in found])})


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


def _series_json(found: SeriesPoints) -> dict[str, Any]:
    return {"key": found.key, "count": found.count, "downsampled": found.downsampled, "x": number_list(found.x),
            "y": number_list(found.y), "step": found.step.astype(np.int64).tolist()}
