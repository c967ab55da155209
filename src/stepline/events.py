"""The one event format: the records the logbook stores, the wire carries and sync replays.

Every record is a JSON object with ``type`` and a per-run ``seq`` (see docs/format.md):

    {"type": "metrics", "seq": 7, "time": 1764100000.25, "step": 3, "epoch": 0.5, "values": {"loss": 0.25}}
    {"type": "params", "seq": 1, "time": ..., "op": "set", "data": {"lr": 0.001}}
    {"type": "params", "seq": 2, "time": ..., "op": "update", "key": "model.layers", "value": 100}
    {"type": "log", "seq": 9, "time": ..., "level": "INFO", "message": "epoch done", "context": {"epoch": 1}}
    {"type": "summary", "seq": 10, "time": ..., "data": {"train_runtime": 12.5}}
    {"type": "status", "seq": 11, "time": ..., "status": "finished"}
    {"type": "media", "seq": 12, "time": ..., "step": 3, "key": "samples", "kind": "image",
     "items": [{"file": "media/12-0.png", "width": 64, "height": 64, "caption": "input"}]}

Metric values and epochs that are NaN or infinite are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``: they are numbers otherwise, so a string there is never ambiguous.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from stepline.values import INT64_MIN, NON_FINITE_NAMES, UINT64_MAX

__all__ = ["NON_FINITE_NAMES", "decode", "encode", "encode_many", "escaped"]

METRICS = "metrics"
PARAMS = "params"
LOG = "log"
STATUS = "status"
HEARTBEAT = "heartbeat"
FILE = "file"
SUMMARY = "summary"
MEDIA = "media"
# The record files a stepline server keeps, each seq once, in the order a shipper sends them (params first: a
# peer that keeps one config per run gets it with the first point; media after their files).
WIRE_RECORDS = (PARAMS, METRICS, LOG, MEDIA)
MEDIA_KINDS = ("image", "histogram", "table", "text", "audio")

_DUMPS_OPTIONS = orjson.OPT_APPEND_NEWLINE


def encode(record: dict[str, Any]) -> bytes:
    """One record as one JSON line (with its newline). Raises ``orjson.JSONEncodeError`` for a record that
    holds text JSON cannot (a lone surrogate): :func:`escaped` makes such a record writable."""
    try:
        line = orjson.dumps(record, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError:
        if record.get("type") != METRICS:
            raise
        line = b":null}"  # an integer beyond 64 bits: take the slow path below, which makes it a float
    # orjson writes a non-finite float as null; a metric value or epoch is never None, so null means we must
    # write it by name.
    if record.get("type") == METRICS and (b":null," in line or b":null}" in line):
        record = {**record, "values": {k: json_number(v) for k, v in record["values"].items()}}
        if "epoch" in record:
            record["epoch"] = json_number(record["epoch"])
        line = orjson.dumps(record, option=_DUMPS_OPTIONS)
    return line


# Between records in one orjson call, a raw newline: orjson writes every newline inside a string as "\\n", so
# ",<newline>," occurs in its output only where this was put.
_LINE_BREAK = orjson.Fragment(b"\n")


def encode_many(records: list[dict[str, Any]]) -> bytes:
    """The lines of :func:`encode` for each record, joined; in one orjson call, which costs a fraction of one
    call per record. Raises ``orjson.JSONEncodeError`` as :func:`encode` does."""
    items: list[Any] = [_LINE_BREAK] * (2 * len(records))
    items[0::2] = records
    try:
        blob = orjson.dumps(items)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, or text JSON cannot hold: one at a time
        return b"".join(map(encode, records))
    lines = blob[1:-3].split(b",\n,")  # the list's brackets, and the last record's separator
    if len(lines) != len(records):
        return b"".join(map(encode, records))
    if b":null" in blob:  # a value to write by name, maybe
        lines = [encode(record)[:-1] if b":null" in line else line for record, line in zip(records, lines)]
    return b"\n".join(lines) + b"\n"


def escaped(value: Any) -> Any:
    """``value`` with every lone surrogate in its text (``os.fsdecode`` of a file name that is not UTF-8, say)
    written as a ``\\udcxx`` escape, so that it can be encoded; keys included."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {escaped(k): escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escaped(v) for v in value]
    return value


def decode(line: bytes | str) -> dict[str, Any]:
    """The record of one JSON line; raises ``orjson.JSONDecodeError`` on a torn or corrupt line."""
    record = orjson.loads(line)
    if not isinstance(record, dict):
        raise orjson.JSONDecodeError("a record must be a JSON object", str(line)[:80], 0)
    if record.get("type") == METRICS:
        values = record.get("values")
        if isinstance(values, dict):
            for key, value in values.items():
                if type(value) is str:
                    values[key] = NON_FINITE_NAMES.get(value, math.nan)
        if type(record.get("epoch")) is str:
            record["epoch"] = NON_FINITE_NAMES.get(record["epoch"], math.nan)
    return record


def json_number(value: Any) -> Any:
    """A metric value as JSON can hold it: NaN and infinities by name, integers beyond 64 bits as floats
    (beyond a float's range, as an infinity)."""
    if type(value) is float and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if type(value) is int and not INT64_MIN <= value <= UINT64_MAX:
        return json_number(float(value) if abs(value) < 2**1024 else math.copysign(math.inf, value))
    return value
