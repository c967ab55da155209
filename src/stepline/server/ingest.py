"""The ingest API: training processes push their runs here (docs/wire.md).

    PUT  /api/v1/projects/{p}/runs/{id}                create the run, or update its metadata
    POST /api/v1/projects/{p}/runs/{id}/events         append records; each seq is stored once
    PUT  /api/v1/projects/{p}/runs/{id}/files/{path}   upload a file, streamed
"""

from __future__ import annotations

import gzip
import os
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from stepline import events
from stepline.errors import ConfigError
from stepline.logbook import layout
from stepline.logbook.tail import RecordTail
from stepline.names import check_name
from stepline.server.responses import json_response
from stepline.server.wire import EventBatch, RunOpening
from stepline.sinks.logbook import LogbookSink

router = APIRouter(prefix="/api/v1")
MAX_EVENTS_BYTES = 64 << 20  # decompressed
MAX_UPLOAD_BYTES = int(os.environ.get("STEPLINE_MAX_UPLOAD_BYTES", 1 << 30))
_batch = TypeAdapter(EventBatch)


class RunWriter:
    """The server's single writer of one run: appends records it has not stored yet, under a lock."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.sink = LogbookSink(path, meta)
        self.max_seq = {kind: _last_seq(layout.record_path(path, kind)) for kind in layout.RECORD_FILES}

    def append(self, records: list[dict[str, Any]]) -> tuple[int, int]:
        fresh = []
        for record in records:
            kind = record["type"]
            if kind in self.max_seq:
                if record["seq"] <= self.max_seq[kind]:
                    continue  # sent again after a lost answer: already stored
                self.max_seq[kind] = record["seq"]
            fresh.append(record)
        self.sink.write(fresh)
        self.sink.flush()
        return len(fresh), len(records) - len(fresh)


def _last_seq(path: Path) -> int:
    tail = RecordTail(path)
    tail.read_new()
    return tail.last_seq


class Ingest:
    """Every run writer of one server, created on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._writers: dict[Path, RunWriter] = {}
        self._lock = threading.Lock()

    def open(self, project: str, run_id: str, meta: dict[str, Any]) -> RunWriter:
        path = layout.run_dir(self.root, project, run_id)
        meta = {**meta, "id": run_id, "project": project}
        meta.setdefault("name", run_id)
        meta.setdefault("status", "running")
        meta.setdefault("started_at", time.time())
        with self._lock:
            writer = self._writers.get(path)
            if writer is None:
                path.mkdir(parents=True, exist_ok=True)
                writer = self._writers[path] = RunWriter(path, meta)
        with writer.lock:
            writer.sink.replace_meta(meta)
            writer.sink.flush()
        return writer

    def writer(self, project: str, run_id: str) -> RunWriter:
        path = layout.run_dir(self.root, project, run_id)
        with self._lock:
            writer = self._writers.get(path)
        if writer is not None:
            return writer
        meta = layout.read_meta(path)
        if meta is None:
            raise ConfigError(f"run {run_id} of project {project!r} was never opened: PUT it first")
        return self.open(project, run_id, meta)

    def forget(self, path: Path) -> None:
        with self._lock:
            self._writers.pop(path, None)

    def forget_project(self, path: Path) -> None:
        with self._lock:
            for run_path in [p for p in self._writers if p.parent == path]:
                del self._writers[run_path]


def _ingest(request: Request) -> Ingest:
    return request.app.state.ingest  # type: ignore[no-any-return]


@router.put("/projects/{project}/runs/{run_id}", summary="Create a run, or bring its metadata up to date")
def open_run(request: Request, project: str, run_id: str, opening: RunOpening) -> Response:
    writer = _ingest(request).open(check_name(project, "project"), check_name(run_id, "run id"), opening.meta)
    base = writer.path / layout.FILES_DIR
    files = {name: (base / name).stat().st_size for name in layout.list_files(base)}
    return json_response({"run": run_id, "max_seq": writer.max_seq, "files": files})


@router.post("/projects/{project}/runs/{run_id}/events", summary="Append records; each seq is stored once",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")}}}})
async def append_events(request: Request, project: str, run_id: str) -> Response:
    body = await _body(request, MAX_EVENTS_BYTES)
    try:
        raw = orjson.loads(body)
        _batch.validate_python(raw)  # every record checked before any is stored
    except orjson.JSONDecodeError as err:
        raise RequestValidationError([{"loc": ["body"], "msg": f"not JSON: {err}", "type": "json_invalid"}]) from None
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ["body", *e["loc"]]} for e in err.errors()]) from None
    writer = _ingest(request).writer(project, run_id)
    records = [_restored(record) for record in raw["events"]]
    with writer.lock:
        accepted, duplicates = writer.append(records)
    return json_response({"accepted": accepted, "duplicates": duplicates, "max_seq": writer.max_seq})


@router.put("/projects/{project}/runs/{run_id}/files/{path:path}", summary="Upload a file (streamed)",
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}})
async def upload_file(request: Request, project: str, run_id: str, path: str) -> Response:
    writer = _ingest(request).writer(project, run_id)
    target = layout.file_path(writer.path, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(layout.temporary_name(target.name))
    size = 0
    try:
        with open(temporary, "wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise ConfigError(f"file over the server's upload limit of {MAX_UPLOAD_BYTES} bytes")
                handle.write(chunk)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return json_response({"path": path, "size": size})


async def _body(request: Request, limit: int) -> bytes:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        try:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = decompressor.decompress(body, limit + 1)
        except (zlib.error, gzip.BadGzipFile) as err:
            raise ConfigError(f"the body is not valid gzip: {err}") from None
    if len(body) > limit:
        raise ConfigError(f"events body over {limit} bytes: send smaller batches")
    return body


def _restored(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the logbook writes it (NaN names become floats again; encode() writes them back)."""
    if record["type"] == events.METRICS:
        values = record["values"]
        for key, value in values.items():
            if type(value) is str:
                values[key] = events.NON_FINITE_NAMES[value]
    return record

