"""The ingest API: training processes push their runs here (docs/wire.md).

    PUT  /api/v1/projects/{p}/runs/{id}                create the run, or update its metadata
    POST /api/v1/projects/{p}/runs/{id}/events         append records; each seq is stored once
    PUT  /api/v1/projects/{p}/runs/{id}/files/{path}   upload a file, streamed
    PUT  /api/v1/projects/{p}/runs/{id}/media/{name}   upload a media file, streamed, before its record
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from stepline import events
from stepline.errors import ConfigError, InvalidNameError, PayloadTooLargeError
from stepline.logbook.layout import is_media_name
from stepline.metrics_batch import read_lines
from stepline.names import check_name, check_project, check_relative_path
from stepline.server import answers
from stepline.server.responses import json_response
from stepline.server.stores.base import Store
from stepline.server.wire import MAX_BATCH_EVENTS, EventBatch, RunOpening, plainly_valid

router = APIRouter(prefix="/api/v1")
MAX_EVENTS_BYTES = 64 << 20  # decompressed
MAX_UPLOAD_BYTES = int(os.environ.get("STEPLINE_MAX_UPLOAD_BYTES", 1 << 30))
_batch = TypeAdapter(EventBatch)


NDJSON = "application/x-ndjson"
_EVENTS_BODY = {"required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventBatch"}},
                            NDJSON: {"schema": {"type": "string", "description": "the records, one per line, as "
                                                "the logbook holds them (an EventBatch's events)"}}}}


def openapi_components() -> dict[str, Any]:
    """The schemas the events route's body refers to, for the app's OpenAPI components: the body is parsed by
    the route itself (one orjson pass), so FastAPI does not list them on its own."""
    schema = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs"), "EventBatch": schema}


def _store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


@router.put("/projects/{project}/runs/{run_id}", summary="Create a run, or bring its metadata up to date",
            responses=answers.documented(answers.OpenedRun))
def open_run(request: Request, project: str, run_id: str, opening: RunOpening) -> Response:
    meta = opening.meta.model_dump(exclude_unset=True)
    writer = _store(request).open(check_project(project), check_name(run_id, "run id"), meta)
    return json_response({"run": run_id, "max_seq": writer.max_seq, "files": writer.files()})


@router.post("/projects/{project}/runs/{run_id}/events", summary="Append records; each seq is stored once",
             responses=answers.documented(answers.Appended), openapi_extra={"requestBody": _EVENTS_BODY})
async def append_events(request: Request, project: str, run_id: str) -> Response:
    body = await _body(request, MAX_EVENTS_BYTES)
    ndjson = _media_type(request) == NDJSON

    def append() -> dict[str, Any]:  # in a worker thread: the store may block (a database round trip)
        received = read_lines(body, MAX_BATCH_EVENTS) if ndjson else None  # a shipper's batch, most bodies
        if received is not None:
            writer = _store(request).writer(project, run_id)
            accepted, duplicates = writer.append_lines(received)
        else:
            records, lines = _checked_records(body, ndjson)
            writer = _store(request).writer(project, run_id)
            accepted, duplicates = writer.append(records, lines)
        return {"accepted": accepted, "duplicates": duplicates, "max_seq": writer.max_seq}

    return json_response(await run_in_threadpool(append))


def _checked_records(body: bytes, ndjson: bool) -> tuple[list[dict[str, Any]], list[bytes] | None]:
    """The records of a body the native reader left (any records, an EventBatch's JSON): parsed, all checked
    before any is stored (the models say what is wrong, and where), and each one's line for an NDJSON body."""
    lines = body.splitlines() if ndjson else None
    try:
        raw = {"events": _parsed_lines(lines)} if lines is not None else orjson.loads(body)
        if not plainly_valid(raw, parsed_json=True):
            _batch.validate_python(raw)
    except orjson.JSONDecodeError as err:
        raise RequestValidationError([{"loc": ["body"], "msg": f"not JSON: {err}", "type": "json_invalid"}]) from None
    except ValidationError as err:
        raise RequestValidationError([{**e, "loc": ["body", *e["loc"]]} for e in err.errors()]) from None
    records = raw["events"]
    # A value written by name ("NaN", "Infinity") is made a float again. Such a name holds an N or an I, bytes
    # most bodies lack and found at memchr's speed: a search for the names themselves cost ten times as much.
    if b"N" in body or b"I" in body:
        records = [_restored(record) for record in records]
    return records, lines


@router.put("/projects/{project}/runs/{run_id}/files/{path:path}", summary="Upload a file (streamed)",
            openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}},
            responses=answers.documented(answers.Uploaded))
async def upload_file(request: Request, project: str, run_id: str, path: str) -> Response:
    check_relative_path(path, "file name")
    receiver = await run_in_threadpool(lambda: _store(request).writer(project, run_id).receive_file(path))
    return json_response({"path": path, "size": await _streamed(request, receiver)})


@router.put("/projects/{project}/runs/{run_id}/media/{name}", summary="Upload a media file (streamed), before "
            "the media record that names it", openapi_extra={"requestBody": {"content": {"application/octet-stream":
                                                                                         {}}}},
            responses=answers.documented(answers.Uploaded))
async def upload_media(request: Request, project: str, run_id: str, name: str) -> Response:
    if not is_media_name(name):
        raise InvalidNameError(f"{name!r} is not a media file's name: stepline names them <seq>-<n>.<ext>")
    receiver = await run_in_threadpool(lambda: _store(request).writer(project, run_id).receive_media(name))
    return json_response({"path": f"media/{name}", "size": await _streamed(request, receiver)})


async def _streamed(request: Request, receiver: Any) -> int:
    """Write the request's body into a store's receiver as it arrives; its size."""
    size = 0
    try:
        async for chunk in request.stream():  # the request guard stops a body over MAX_UPLOAD_BYTES
            size += len(chunk)
            await run_in_threadpool(receiver.write, chunk)
        await run_in_threadpool(receiver.commit)
    except BaseException:
        await run_in_threadpool(receiver.abort)
        raise
    return size


async def _body(request: Request, limit: int) -> bytes:
    body = await request.body()
    if request.headers.get("content-encoding") == "gzip":
        try:
            decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = decompressor.decompress(body, limit + 1)
        except (zlib.error, gzip.BadGzipFile) as err:
            raise ConfigError(f"the body is not valid gzip: {err}") from None
    if len(body) > limit:
        raise PayloadTooLargeError(f"events body over {limit} bytes once decompressed: send smaller batches")
    return body


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _parsed_lines(lines: list[bytes]) -> list[Any]:
    """The records of an NDJSON body's lines (which a store may keep as they are: each holds one record, and
    bytes.splitlines, which readers use, cut it at every line break)."""
    try:
        return list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        number, err = next((number, err) for number, err in _line_errors(lines))
        raise RequestValidationError([{"loc": ["body", "events", number], "type": "json_invalid",
                                       "msg": f"line {number + 1} is not JSON: {err}"}]) from None


def _line_errors(lines: list[bytes]) -> Iterator[tuple[int, orjson.JSONDecodeError]]:
    for number, line in enumerate(lines):
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as err:
            yield number, err


def _restored(record: dict[str, Any]) -> dict[str, Any]:
    """The record as the logbook writes it (NaN names become floats again; encode() writes them back)."""
    if record["type"] == events.METRICS:
        values = record["values"]
        for key, value in values.items():
            if type(value) is str:
                values[key] = events.NON_FINITE_NAMES[value]
        if type(record.get("epoch")) is str:
            record["epoch"] = events.NON_FINITE_NAMES[record["epoch"]]
    return record

