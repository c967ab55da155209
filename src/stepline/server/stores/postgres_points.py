"""A run's metric points as the PostgreSQL store keeps them (schema 4), in the logbook index's layout: each
metrics record's seq, step, time and epoch once, in the run's record chunks, and each series' points as (record
number, value) in its point chunks. A chunk is a row of at most :data:`MAX_CHUNK` consecutive entries (records
of a run numbered from 0, points of a series from 0), every field an array of big-endian numbers (the bytes
int8send and float8send give; a record number in 4 bytes).

    rows = chunk_rows(RECORDS, run_pk, first_record, seq=..., step=..., time=..., epoch=...)  # to COPY in
    rows = chunk_rows(POINTS, series_pk, first_point, record=..., value=...)
    arrays = read_points(db, run_pk, series_pk, start=0, fields=("step", "value"))  # {"step": int64 array, ...}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

MAX_CHUNK = 65_536  # entries a row at most: a read from any place starts at most this far back


@dataclass(frozen=True)
class ChunkTable:
    """A table of chunks: whose entries a row holds (its ``owner`` column), and each field's big-endian type."""

    name: str
    owner: str
    fields: dict[str, str]

    @property
    def copy_statement(self) -> str:
        """The COPY that takes :func:`chunk_rows`, binary."""
        return f"COPY {self.name} ({self.owner}, first_i, n, {', '.join(self.fields)}) FROM STDIN (FORMAT BINARY)"

    @property
    def copy_types(self) -> list[str]:
        return ["int8", "int8", "int4", *["bytea"] * len(self.fields)]


RECORDS = ChunkTable("record_chunks", "run", {"seq": ">i8", "step": ">i8", "time": ">f8", "epoch": ">f8"})
POINTS = ChunkTable("point_chunks", "series", {"record": ">u4", "value": ">f8"})


def chunk_rows(table: ChunkTable, owner: int, first_i: int, **arrays: np.ndarray) -> list[tuple[Any, ...]]:
    """The rows of an owner's new entries (a run's records, a series' points), its places from ``first_i`` on
    (one row per :data:`MAX_CHUNK`)."""
    count = len(next(iter(arrays.values())))
    rows = []
    for start in range(0, count, MAX_CHUNK):
        stop = min(start + MAX_CHUNK, count)
        rows.append((owner, first_i + start, stop - start, *(np.asarray(arrays[name][start:stop]).astype(kind).tobytes()
                                                            for name, kind in table.fields.items())))
    return rows


def read_points(db: psycopg.Connection, run: int, series: int, start: int, fields: Sequence[str],
                ) -> dict[str, np.ndarray]:
    """The ``fields`` (``value``, and the records' ``seq``, ``step``, ``time``, ``epoch``) of a series' points from
    place ``start`` on, as native arrays, in place order."""
    unknown = set(fields) - set(RECORDS.fields) - {"value"}
    if unknown:
        raise ValueError(f"no point field {sorted(unknown)[0]!r}")  # names go into the SQL: ours only
    of_records = [name for name in fields if name in RECORDS.fields]
    points = _read(db, POINTS, series, start, None, ["record"] * bool(of_records) + ["value"] * ("value" in fields))
    found = {"value": points["value"]} if "value" in fields else {}
    if of_records:
        numbers = points["record"].astype(np.int64)
        first = int(numbers[0]) if len(numbers) else 0
        records = _read(db, RECORDS, run, first, int(numbers[-1]) + 1 if len(numbers) else first, of_records)
        for name in of_records:
            found[name] = records[name][numbers - first]  # a series' records rise: one range of the run's
    return found


def _read(db: psycopg.Connection, table: ChunkTable, owner: int, start: int, stop: int | None,
          wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """The ``wanted`` fields of an owner's entries from place ``start`` on (up to ``stop``), each one array."""
    # A chunk holding place ``start`` begins less than MAX_CHUNK before it: the key's index bounds the scan.
    before_stop = "" if stop is None else f" AND first_i < {int(stop)}"
    rows = db.cursor(binary=True).execute(
        f"SELECT first_i, {', '.join(wanted)} FROM {table.name} WHERE {table.owner} = %s AND first_i > %s "
        f"AND first_i + n > %s{before_stop} ORDER BY first_i", (owner, start - MAX_CHUNK, start)).fetchall()
    skip = max(0, start - rows[0][0]) if rows else 0
    found = {}
    for number, name in enumerate(wanted, start=1):
        kind = np.dtype(table.fields[name])
        parts = [np.frombuffer(row[number], dtype=kind) for row in rows]
        joined = np.concatenate(parts) if parts else np.empty(0, kind)
        found[name] = joined[skip:].astype(kind.newbyteorder("="))
    return found
