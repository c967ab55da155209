"""The wire protocol's request bodies, declared once: they validate ingest and document it in OpenAPI.

The records are the logbook's own (docs/format.md); docs/wire.md describes the exchange.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

Number = StrictInt | StrictFloat | StrictBool | Literal["NaN", "Infinity", "-Infinity"]
Seq = Annotated[StrictInt, Field(ge=1, description="the run's sequence number: each record is stored once")]
Time = StrictFloat | StrictInt


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricsRecord(_Record):
    type: Literal["metrics"]
    seq: Seq
    time: Time
    step: StrictInt
    epoch: StrictInt | StrictFloat | None = None
    values: dict[StrictStr, Number] = Field(min_length=1)


class ParamsRecord(_Record):
    type: Literal["params"]
    seq: Seq
    time: Time
    op: Literal["set", "extend", "update"]
    data: dict[str, Any] | None = None
    key: StrictStr | None = None
    value: Any = None


class LogRecord(_Record):
    type: Literal["log"]
    seq: Seq
    time: Time
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    message: StrictStr
    context: dict[str, Any] | None = None


class StatusRecord(_Record):
    """State rather than history: applied to the run's metadata, so ``seq`` may be 0 and repeats are harmless."""

    type: Literal["status"]
    seq: Annotated[StrictInt, Field(ge=0)]
    time: Time
    status: Literal["running", "finished", "failed", "killed"]
    error: dict[str, Any] | None = None


class HeartbeatRecord(_Record):
    type: Literal["heartbeat"]
    seq: Annotated[StrictInt, Field(ge=0)]
    time: Time


class SummaryRecord(_Record):
    type: Literal["summary"]
    seq: Annotated[StrictInt, Field(ge=0)]
    time: Time
    data: dict[str, Any]


Record = Annotated[MetricsRecord | ParamsRecord | LogRecord | StatusRecord | HeartbeatRecord | SummaryRecord,
                   Field(discriminator="type")]


class EventBatch(BaseModel):
    """``POST .../runs/{id}/events``: records in ``seq`` order; all are checked before any is stored."""

    events: list[Record] = Field(max_length=100_000)


class RunOpening(BaseModel):
    """``PUT /api/v1/projects/{p}/runs/{id}``: create the run, or bring its metadata up to date."""

    meta: dict[str, Any]
