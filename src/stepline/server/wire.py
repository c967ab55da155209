"""The wire protocol's request bodies, declared once: they validate ingest and document it in OpenAPI.

The records are the logbook's own (docs/format.md); docs/wire.md describes the exchange.
"""

from __future__ import annotations

from itertools import chain, repeat
from operator import itemgetter
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from stepline.logbook.layout import is_media_name

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
    epoch: StrictInt | StrictFloat | Literal["NaN", "Infinity", "-Infinity"] | None = None
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


class MediaRecord(_Record):
    """Images, histograms, tables, text or audio logged under one key at one step (docs/format.md); an item's
    ``file`` is ``media/<name>``, uploaded with ``PUT .../media/<name>`` before its record."""

    type: Literal["media"]
    seq: Seq
    time: Time
    step: StrictInt
    key: StrictStr = Field(min_length=1)
    kind: Literal["image", "histogram", "table", "text", "audio"]
    items: list[dict[str, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _files_are_media(self) -> MediaRecord:
        for item in self.items:
            name = item.get("file")
            if name is not None and (not isinstance(name, str) or not name.startswith("media/")
                                     or not is_media_name(name[len("media/"):])):
                raise ValueError(f"an item's file must be media/<seq>-<n>.<ext>, as stepline names them, got {name!r}")
        return self


Record = Annotated[MetricsRecord | ParamsRecord | LogRecord | StatusRecord | HeartbeatRecord | SummaryRecord
                   | MediaRecord, Field(discriminator="type")]


MAX_BATCH_EVENTS = 100_000


class EventBatch(BaseModel):
    """``POST .../runs/{id}/events``: records in ``seq`` order; all are checked before any is stored."""

    events: list[Record] = Field(max_length=MAX_BATCH_EVENTS)


_METRICS_FIELDS = frozenset(MetricsRecord.model_fields)
_VALUE_NAMES = frozenset(("NaN", "Infinity", "-Infinity"))
_NUMBER_TYPES = frozenset((float, int, bool))
_TIME_TYPES = frozenset((float, int))
_EPOCH_TYPES = frozenset((float, int, type(None)))
_record = TypeAdapter(Record)


def plainly_valid(batch: Any, *, parsed_json: bool = False) -> bool:
    """Whether :class:`EventBatch` takes ``batch``, by checks written for the records (metrics records, most of
    any batch, at a fraction of the models' cost; the others by the models). True only where the models
    would say valid; False means "ask the models", which say what is wrong, and where. ``parsed_json``: the
    batch is what a JSON parser made, whose object keys are text by JSON's rules (not checked again)."""
    records = batch.get("events") if type(batch) is dict else None
    if type(records) is not list or len(records) > MAX_BATCH_EVENTS:
        return False
    if not records:
        return True
    if set(map(type, records)) != {dict}:
        return False
    kinds = list(map(dict.get, records, repeat("type")))
    if kinds.count("metrics") == len(records):  # the common batch
        return _all_plain_metrics(records, check_keys=not parsed_json)
    for record, kind in zip(records, kinds):
        if kind == "metrics":
            if not _plain_metrics(record):
                return False
        else:
            try:
                _record.validate_python(record)
            except ValidationError:
                return False
    return True


def _all_plain_metrics(records: list[dict[str, Any]], check_keys: bool) -> bool:
    """:func:`_plain_metrics` of every record, at C speed: each field's values taken out at once, and the set of
    their types checked (a value written by name sends the records to the one-by-one check)."""
    if not all(map(_METRICS_FIELDS.issuperset, records)):
        return False
    try:
        seqs, times, steps, values = (list(map(itemgetter(field), records))
                                      for field in ("seq", "time", "step", "values"))
    except KeyError:
        return False
    epochs = map(dict.get, records, repeat("epoch"))
    epoch_kinds = set(map(type, epochs))
    if (set(map(type, seqs)) != {int} or min(seqs) < 1 or not set(map(type, times)) <= _TIME_TYPES
            or set(map(type, steps)) != {int} or not epoch_kinds <= _EPOCH_TYPES | {str}
            or set(map(type, values)) != {dict} or not all(values)
            or (check_keys and set(map(type, chain.from_iterable(values))) != {str})):
        return False
    kinds = set(map(type, chain.from_iterable(map(dict.values, values))))
    if kinds <= _NUMBER_TYPES and str not in epoch_kinds:
        return True
    return kinds <= _NUMBER_TYPES | {str} and all(map(_plain_metrics, records))  # a value or epoch by name


def _plain_metrics(record: dict[str, Any]) -> bool:
    seq, time, step, epoch, values = (record.get(field) for field in ("seq", "time", "step", "epoch", "values"))
    if (not _METRICS_FIELDS.issuperset(record) or type(seq) is not int or seq < 1
            or (type(time) is not float and type(time) is not int) or type(step) is not int
            or (epoch is not None and type(epoch) is not float and type(epoch) is not int
                and not (type(epoch) is str and epoch in _VALUE_NAMES))
            or type(values) is not dict or not values):
        return False
    for key, value in values.items():
        kind = type(value)
        if type(key) is not str or (kind is not float and kind is not int and kind is not bool
                                    and not (kind is str and value in _VALUE_NAMES)):
            return False
    return True


# Seconds since 1970, up to the year 5138: a time readers can subtract from now.
Timestamp = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1e11)]


class RunMeta(BaseModel):
    """A run's metadata as a client sends it: the fields readers compute with are checked; other fields are kept
    as sent, as long as JSON holds them exactly (no integer beyond 64 bits, no lone surrogate)."""

    model_config = ConfigDict(extra="allow")

    name: StrictStr | None = None
    status: Literal["running", "finished", "failed", "killed"] | None = None
    created_at: Timestamp | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    heartbeat_at: Timestamp | None = None
    resumed_at: list[Timestamp] | None = None
    tags: list[StrictStr] | None = None
    notes: StrictStr | None = None
    error: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _kept_exactly(self) -> RunMeta:
        try:
            orjson.dumps(self.model_dump())
        except orjson.JSONEncodeError as err:
            raise ValueError(f"the meta holds a value JSON cannot keep exactly ({err}); send numbers within 64 "
                             "bits and valid Unicode text") from None
        return self


class RunOpening(BaseModel):
    """``PUT /api/v1/projects/{p}/runs/{id}``: create the run, or bring its metadata up to date."""

    meta: RunMeta
