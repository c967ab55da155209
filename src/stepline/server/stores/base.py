"""What the server asks of a store, whichever keeps the runs: a logbook folder or a PostgreSQL database.

    store = open_store("stepline_logs")                  # or "postgresql://user@host/db"
    store.runs("mnist")                                  # every run's overview
    writer = store.open("mnist", "a1b2c3d4", meta)       # the ingest side: one writer per run
    writer.append(records)                               # each (run, seq) stored once
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter, lt
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np

from stepline.errors import ConfigError, ConflictError
from stepline.logbook.reader import meta_time
from stepline.metrics_batch import ReceivedLines
from stepline.server.auth import Accounts
from stepline.server.downsample import keep_extremes

Axis = Literal["step", "epoch", "time"]  # what a series query can plot its points against
X_AXES: tuple[str, ...] = get_args(Axis)


@dataclass
class SeriesPoints:
    """The points of one metric a query asked for: x, y and step, in logged order."""

    key: str
    count: int  # points in the whole series, however many were asked for
    downsampled: bool
    x: np.ndarray
    y: np.ndarray
    step: np.ndarray

    @classmethod
    def empty(cls, key: str) -> SeriesPoints:
        """A metric the run does not have: no points."""
        return cls(key, 0, False, np.empty(0), np.empty(0), np.empty(0))


class FileReceiver(Protocol):
    """An upload in progress: nothing of it is visible until :meth:`commit`."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> int: ...

    def abort(self) -> None: ...


@dataclass
class RunState:
    """What a run holds, read under its lock (and, in PostgreSQL, its row lock): what records the server makes
    itself are numbered and built from, so that two server processes never pick the same seq."""

    max_seq: dict[str, int]  # the largest stored seq per record type
    meta: dict[str, Any]
    stored_keys: Callable[[Collection[str]], set[str]]  # which of these idempotency keys the run holds

    @property
    def next_seq(self) -> int:
        return max(self.max_seq.values()) + 1


# A record a client may send twice (a retried request) can carry a key of the client's choosing in this field;
# a run stores each key once (RunState.stored_keys). The name is Trackio's, whose clients send one per entry.
IDEMPOTENCY_KEY = "log_id"

# Given the run's state, the records to append and the metadata to keep (None: unchanged).
MadeRecords = Callable[[RunState], tuple[list[dict[str, Any]], dict[str, Any] | None]]


class RunWriter(Protocol):
    """The server's single writer of one run, safe to call from several threads. Records that carry a client's
    seq go to :meth:`append`; records numbered by the server (from clients that send no seq of their own)
    go to :meth:`append_made`, which builds them under the run's lock."""

    max_seq: dict[str, int]  # the largest stored seq per record type (metrics, params, log)

    @property
    def meta(self) -> dict[str, Any]: ...

    def replace_meta(self, meta: dict[str, Any]) -> None: ...

    def append(self, records: list[dict[str, Any]], lines: list[bytes] | None = None) -> tuple[int, int]:
        """Store the records not stored yet; (accepted, duplicates). ``lines``: each record's line as the client
        sent it, for a store that keeps lines (stored as they are, not encoded again)."""
        ...

    def append_lines(self, received: ReceivedLines) -> tuple[int, int]:
        """:meth:`append` for a body of metrics lines read natively (most of what shippers send), by the same
        rule: the records past the run's largest metrics seq are stored."""
        ...

    def append_made(self, make: MadeRecords) -> int:
        """Build records from the run's current state and store them, atomically; how many were stored."""
        ...

    def files(self) -> dict[str, int]: ...

    def receive_file(self, path: str) -> FileReceiver: ...

    def receive_media(self, name: str) -> FileReceiver:
        """Where a media file (``12-0.png``, a name checked by the caller) is written, before its record."""
        ...


class Store(Protocol):
    """Projects, runs, their records and their files: read by the query API, written by the ingest API. The
    emulated APIs (server/lmtracker.py, server/trackio.py) build on the same operations: a run found or made
    by name, records numbered under the run's lock, idempotency keys; nothing here is a peer's own."""

    def describe(self) -> str: ...

    def accounts(self) -> Accounts:
        """Where this store keeps the server's users and token hashes."""
        ...

    def projects(self) -> list[dict[str, Any]]:
        """Every project: name, run count, last activity (its creation time while it has no run)."""
        ...

    def create_project(self, project: str) -> None: ...

    def has_project(self, project: str) -> bool: ...

    def runs(self, project: str) -> list[dict[str, Any]]:
        """Every run of ``project`` as an overview, oldest first; a node's part of a run (server/node_parts.py)
        is not one of them."""
        ...

    def run(self, project: str, run_id: str) -> dict[str, Any]:
        """One run's overview with its whole ``meta``; raises RunNotFoundError."""
        ...

    def meta(self, project: str, run_id: str) -> dict[str, Any]:
        """One run's metadata, without its overview's summaries; raises RunNotFoundError."""
        ...

    def runs_named(self, project: str, name: str) -> list[dict[str, Any]]:
        """The ``meta`` (with ``id``) of each run of ``project`` called ``name``, oldest first, without reading
        every run's overview: how a client that knows its runs by name finds one on every request."""
        ...

    def metric_keys(self, project: str, run_id: str) -> list[str]: ...

    def series(self, project: str, run_id: str, keys: list[str], x: str, points: int | None,
               after: int) -> list[SeriesPoints]:
        """Points of ``keys`` from index ``after`` on; at most ``points`` each, spikes and NaN kept (None: all)."""
        ...

    def metric_rows(self, project: str, run_id: str) -> list[tuple[int, dict[str, float]]]:
        """(step, values) of each metric record, in logged order."""
        ...

    def logs(self, project: str, run_id: str, level: str | None, offset: int,
             limit: int) -> tuple[int, list[dict[str, Any]]]: ...

    def files(self, project: str, run_id: str) -> dict[str, int]: ...

    def read_file(self, project: str, run_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of a run's file; raises RunNotFoundError when there is no such file."""
        ...

    def media(self, project: str, run_id: str, key: str | None) -> list[dict[str, Any]]:
        """The run's media records (of ``key``, or all), in logged order, as docs/format.md has them."""
        ...

    def media_file(self, project: str, run_id: str, name: str) -> Path | tuple[int, Iterator[bytes]]:
        """A media file of the run: its path (served with range requests), or (size, chunks); raises
        RunNotFoundError when there is none of that name."""
        ...

    def delete_run(self, project: str, run_id: str, *, force: bool = False) -> None: ...

    def delete_project(self, project: str, *, force: bool = False) -> int: ...

    def open(self, project: str, run_id: str, meta: dict[str, Any]) -> RunWriter:
        """The run's writer, creating the run or taking ``meta`` as its metadata."""
        ...

    def writer(self, project: str, run_id: str) -> RunWriter:
        """The writer of a run opened before; raises RunNotFoundError when it never was."""
        ...

    def open_named(self, project: str, name: str, source: str, meta: dict[str, Any]) -> RunWriter:
        """The writer of the newest run called ``name`` that ``source`` made (tagged so), or of a new run made
        with ``meta``: in one step, so that first pushes arriving at once (on any server process) make one run."""
        ...

    def close(self) -> None: ...


def not_stored_yet(records: list[dict[str, Any]], max_seq: dict[str, int]) -> list[dict[str, Any]]:
    """The records a run does not hold yet, by its largest ``seq`` per kind (moved on in ``max_seq``): a batch
    sent again after a lost answer is stored once. The one de-duplication rule of every store."""
    kinds = set(map(itemgetter("type"), records))
    if len(kinds) == 1 and (kind := kinds.pop()) in max_seq:  # a shipper's batch: one kind, in order, at C speed
        seqs = list(map(itemgetter("seq"), records))
        if seqs[0] > max_seq[kind] and all(map(lt, seqs, islice(seqs, 1, None))):
            max_seq[kind] = seqs[-1]
            return list(records)
    fresh = []
    for record in records:
        kind = record["type"]
        if kind in max_seq:
            if record["seq"] <= max_seq[kind]:
                continue  # sent again after a lost answer: already stored
            max_seq[kind] = record["seq"]
        fresh.append(record)
    return fresh


def overview(meta: dict[str, Any], status: str, params: dict[str, Any], steps: int,
             metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run as the runs list shows it, the same from every store."""
    started, ended = meta_time(meta, "started_at"), meta_time(meta, "ended_at")
    last_activity = ended or meta_time(meta, "heartbeat_at") or started
    return {
        "id": meta.get("id"),
        "name": meta.get("name"),
        "project": meta.get("project"),
        "status": status,
        "started_at": started,
        "ended_at": ended,
        "duration": (last_activity - started) if last_activity and started else None,
        "last_activity": last_activity,
        "tags": meta.get("tags") or [],
        "params": params,
        "steps": steps,
        "metrics": metrics,
    }


def oldest_first(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs (overviews or metas) in the order the API lists them: by start, then id."""
    return sorted(runs, key=lambda run: (meta_time(run, "started_at") or 0.0, str(run["id"])))


def opened_meta(project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A pushed run's metadata as a store keeps it: its own id and project, and a name, status and start."""
    meta = {**meta, "id": run_id, "project": project}
    meta.setdefault("name", run_id)
    meta.setdefault("status", "running")
    meta.setdefault("started_at", time.time())
    return meta


def check_run_deletable(run_id: str, status: str, force: bool) -> None:
    if status == "running" and not force:
        raise ConflictError(f"run {run_id} is still running; stop it first, or delete with force")


def check_project_deletable(project: str, runs: list[dict[str, Any]], force: bool) -> None:
    running = [r["id"] for r in runs if r["status"] == "running"]
    if running and not force:
        raise ConflictError(f"project {project!r} has running runs ({', '.join(running)}); stop them, or use force")


def check_axis(x: str) -> str:
    if x not in X_AXES:
        raise ConfigError(f"x={x!r} must be one of {', '.join(X_AXES)}")
    return x


def series_points(key: str, count: int, arrays: dict[str, np.ndarray], x: str, points: int | None) -> SeriesPoints:
    """A query's answer from a series' points past its cursor (``arrays`` holds ``step``, ``value`` and the
    x-axis field; epochs NaN where none was logged): every point, or at most ``points`` by
    :func:`keep_extremes`."""
    steps, values = arrays["step"].astype(np.float64), arrays["value"]
    xs = steps if x == "step" else arrays[x]
    if points is not None:
        keep = keep_extremes(values, points)
        if len(keep) < len(values):
            return SeriesPoints(key, count, True, xs[keep], values[keep], steps[keep])
    return SeriesPoints(key, count, False, xs, values, steps)
