"""The answers of the query and ingest APIs, declared once for OpenAPI: client generators and API fuzzers read
them from ``/openapi.json``, and the schemathesis test checks every answer against them.

The routes build their answers as plain JSON (orjson is far quicker than validating a model on the way
out); these models describe that JSON. A number that JSON cannot hold (NaN, an infinity) is its name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Number = float | int | bool | Literal["NaN", "Infinity", "-Infinity"]


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Project(Answer):
    name: str
    runs: int
    last_activity: float | None


class Projects(Answer):
    projects: list[Project]


class MetricSummary(Answer):
    count: int
    nan_count: int
    last: Number | None
    last_step: int | None
    min: Number | None
    min_step: int | None
    max: Number | None
    max_step: int | None


class RunOverview(Answer):
    id: str
    name: str | None
    project: str | None
    status: Literal["running", "finished", "failed", "killed", "crashed"]
    started_at: float | None
    ended_at: float | None
    duration: float | None
    last_activity: float | None
    tags: list[str]
    params: dict[str, Any]
    steps: int = Field(description="metrics records (log calls) of the run")
    metrics: dict[str, MetricSummary]


class Runs(Answer):
    runs: list[RunOverview]


class RunDetail(RunOverview):
    meta: dict[str, Any]
    summary: dict[str, Any]
    error: dict[str, Any] | None


class MetricKeys(Answer):
    keys: list[str]


class SeriesPoints(Answer):
    key: str
    count: int = Field(description="points in the whole series, however many are shown")
    downsampled: bool
    x: list[Number]
    y: list[Number]
    step: list[int]


class Series(Answer):
    run: str
    series: list[SeriesPoints]


class LogLine(Answer):
    time: float | None
    level: str | None
    message: str | None
    context: dict[str, Any]


class Logs(Answer):
    total: int
    offset: int
    logs: list[LogLine]


class File(Answer):
    path: str
    size: int


class Files(Answer):
    files: list[File]


class MediaRecord(Answer):
    step: int
    time: float
    key: str
    kind: Literal["image", "histogram", "table", "text", "audio"]
    items: list[dict[str, Any]] = Field(description="as docs/format.md has them; each file's `url` added")


class Media(Answer):
    media: list[MediaRecord]


class Deleted(Answer):
    deleted: str
    runs: int | None = None


class ComparedRun(RunOverview):
    series: list[SeriesPoints]


class Compare(Answer):
    runs: list[ComparedRun]
    params_diff: dict[str, list[Any]]


class OpenedRun(Answer):
    run: str
    max_seq: dict[str, int] = Field(description="the largest seq the server holds, per record file")
    files: dict[str, int] = Field(description="the run's files and their sizes")


class Appended(Answer):
    accepted: int
    duplicates: int
    max_seq: dict[str, int]


class Uploaded(Answer):
    path: str
    size: int


class Problem(Answer):
    detail: str | list[dict[str, Any]]


def documented(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: its 200 answer, and the error answer every route may give."""
    return {200: {"model": model}, "4XX": {"model": Problem}}
