"""Reading a logbook: the one way every part of stepline (CLI, server, sync) reads runs.

    book = stepline.Logbook("stepline_logs")
    for run in book.runs(project="mnist"):
        print(run.name, run.status, run.series("train/loss").values[-1])

Torn lines (a process killed mid-write) are skipped and counted in ``run.problems``; a record whose
``seq`` was already read (a write retried after an error) is read once.

A run's metric keys, summaries and series are read from its index (``logbook/index.py``) and the lines past
it, so they cost what the index does not cover, not the whole file; the index is written back for the next
reader when a large part was missing (a run from before it, or one whose writer could not keep it).
"""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stepline import events
from stepline.config import heartbeat_timeout as configured_heartbeat_timeout
from stepline.config import logbook_root
from stepline.errors import RunNotFoundError, metric_not_found
from stepline.job import is_node_part, node_of_key, node_part_id, node_part_ids
from stepline.logbook import layout
from stepline.logbook.tail import LineCounts, decode_lines
from stepline.names import check_project
from stepline.optional import optional_import
from stepline.params import apply_operation
from stepline.values import decode_params

if TYPE_CHECKING:
    from stepline.logbook.index import MetricIndex
    from stepline.logbook.metric_summary import MetricSummary


@dataclass
class Series:
    """One metric's points in the order they were logged."""

    key: str
    steps: list[Any] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    times: list[Any] = field(default_factory=list)
    epochs: list[float | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)


def meta_time(meta: dict[str, Any], key: str) -> float | None:
    """A time field of a run's metadata, or None when it is missing or not a number: one bad field in one run's
    meta.json never fails a listing."""
    value = meta.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def derived_status(meta: dict[str, Any], heartbeat_timeout: float) -> str:
    """A run's status as readers report it: ``crashed`` for a ``running`` run whose heartbeat is stale."""
    status = meta.get("status", "running")
    if status == "running":
        beat = meta_time(meta, "heartbeat_at") or meta_time(meta, "started_at") or 0.0
        if time.time() - beat > heartbeat_timeout:
            return "crashed"
    return str(status)


def _epochs(epochs: Any) -> list[float | None]:
    """The epochs of an index's records as a list: None where a record had none."""
    from stepline.logbook.columns import missing_epochs

    missing = missing_epochs(epochs)
    if not missing.any():
        return epochs.tolist()
    if missing.all():
        return [None] * len(epochs)
    return [None if gone else epoch for epoch, gone in zip(epochs.tolist(), missing.tolist())]


class Logbook:
    """A logbook folder, read-only: ``Logbook()`` reads ``STEPLINE_DIR`` or ``./stepline_logs``.

        book = Logbook("stepline_logs")
        run = book.run("a1b2c3d4")
    """

    def __init__(self, dir: str | os.PathLike[str] | None = None, *, heartbeat_timeout: float | None = None) -> None:
        self.root = logbook_root(dir)
        self.heartbeat_timeout = (
            heartbeat_timeout if heartbeat_timeout is not None else configured_heartbeat_timeout()
        )

    def __repr__(self) -> str:
        return f"<stepline.Logbook {self.root}>"

    def projects(self) -> list[str]:
        """The names of the projects that hold at least one run."""
        return [p for p in layout.iter_projects(self.root) if next(layout.iter_run_dirs(self.root, p), None)]

    def runs(self, project: str | None = None, *, node_parts: bool = False) -> list[RunView]:
        """The runs of ``project`` (or of every project), oldest first. A job over several nodes is one run;
        ``node_parts=True`` also lists the parts that hold its other nodes' machines (what sync sends)."""
        projects = [check_project(project)] if project is not None else list(layout.iter_projects(self.root))
        views = []
        for name in projects:
            for path in layout.iter_run_dirs(self.root, name):
                meta = layout.read_meta(path)
                if meta is not None and (node_parts or not is_node_part(meta)):  # a part shows as its run
                    views.append(RunView(path, meta, self.heartbeat_timeout))
        views.sort(key=lambda v: (v.started_at or 0.0, v.id))
        return views

    def run(self, id_or_name: str, project: str | None = None) -> RunView:
        """The run with this id (a node's part too, ``<id>.node1``), else the latest run with this name; raises
        :class:`RunNotFoundError`."""
        runs = self.runs(project, node_parts=True)
        for view in runs:
            if view.id == id_or_name:
                return view
        named = [view for view in runs if view.name == id_or_name and not is_node_part(view.meta)]
        if named:
            return named[-1]
        where = f"project {project!r}" if project is not None else str(self.root)
        raise RunNotFoundError(
            f"no run with id or name {id_or_name!r} in {where}; `stepline list` shows the runs there"
        )


class RunView:
    """One run as the logbook holds it. Every accessor reads the files afresh."""

    def __init__(self, path: Path, meta: dict[str, Any], heartbeat_timeout: float) -> None:
        self.path = path
        self.meta = meta
        self._heartbeat_timeout = heartbeat_timeout
        self.problems = {"torn_lines": 0, "duplicate_records": 0}

    def __repr__(self) -> str:
        return f"<stepline.RunView {self.project}/{self.name} id={self.id} {self.status}>"

    id = property(lambda self: self.meta.get("id", self.path.name))
    name = property(lambda self: self.meta.get("name", self.id))
    project = property(lambda self: self.meta.get("project", self.path.parent.name))
    started_at = property(lambda self: meta_time(self.meta, "started_at"))
    ended_at = property(lambda self: meta_time(self.meta, "ended_at"))
    heartbeat_at = property(lambda self: meta_time(self.meta, "heartbeat_at"))
    error = property(lambda self: self.meta.get("error"))
    tags = property(lambda self: list(self.meta.get("tags") or []))
    notes = property(lambda self: self.meta.get("notes"))

    @property
    def summary(self) -> dict[str, Any]:
        """The run's final figures, as set by ``run.summary.update``."""
        return decode_params(self.meta.get("summary") or {})

    @property
    def status(self) -> str:
        """``running``, ``finished``, ``failed``, ``killed``, or ``crashed`` (running, but the heartbeat is stale)."""
        return derived_status(self.meta, self._heartbeat_timeout)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (or to the last heartbeat while running or crashed)."""
        end = self.ended_at or self.heartbeat_at
        return end - self.started_at if end is not None and self.started_at is not None else None

    def records(self, record_type: str) -> Iterator[dict[str, Any]]:
        """The raw records of one type (``metrics``, ``params``, ``log``) in the event format."""
        path = layout.record_path(self.path, record_type)
        try:
            handle = open(path, "rb")
        except FileNotFoundError:
            return
        counts = LineCounts()
        try:
            with handle:
                yield from decode_lines(handle, counts)
        finally:
            self.problems["torn_lines"] += counts.torn_lines
            self.problems["duplicate_records"] += counts.duplicate_records

    def params(self) -> dict[str, Any]:
        """The params, every recorded operation replayed in order."""
        state: dict[str, Any] = {}
        for record in self.records(events.PARAMS):
            apply_operation(state, record)
        return decode_params(state)

    def metrics(self) -> list[dict[str, Any]]:
        """One dict per log call: ``step``, ``timestamp``, ``epoch`` when it was set, and the values; the
        other nodes' samples of their machines (a job over several nodes) among them by time.

        A metric itself named ``step``, ``timestamp`` or ``epoch`` is shadowed here; read it with :meth:`series`.
        """
        rows = []
        for record in self.records(events.METRICS):
            row = dict(record.get("values") or {})
            row["step"] = record.get("step")
            row["timestamp"] = record.get("time")
            if "epoch" in record:
                row["epoch"] = record["epoch"]
            rows.append(row)
        parts = [part.metrics() for part in self.nodes()]
        if not parts:
            return rows
        # each list keeps its own order; they are interleaved by time
        return list(heapq.merge(rows, *parts, key=lambda row: row["timestamp"] or 0.0))

    def metric_keys(self) -> list[str]:
        """Every metric key the run logged, in first-seen order (the other nodes' machine figures last)."""
        keys = list(self.index().columns)
        for part in self.nodes():
            keys.extend(part.metric_keys())
        return keys

    def summaries(self) -> dict[str, MetricSummary]:
        """Per metric: its point count, NaN count, last value and its extremes, with their steps."""
        found = self.index().summaries()
        for part in self.nodes():
            found.update(part.summaries())
        return found

    def nodes(self) -> list[RunView]:
        """For a run of a job over several nodes, the parts that hold the other nodes' machine figures
        (``system/node.<N>/...``; :meth:`series` and :meth:`metric_keys` read them as the run's own)."""
        return [part for part in map(self._part, node_part_ids(self.meta)) if part is not None]

    def _part(self, part_id: str) -> RunView | None:
        path = self.path.parent / part_id
        meta = layout.read_meta(path)
        return RunView(path, meta, self._heartbeat_timeout) if meta is not None else None

    def metric_records(self) -> int:
        """How many ``run.log`` calls (metrics records) the run holds."""
        return self.index().records

    def series(self, key: str) -> Series:
        """The points of one metric: ``run.series("train/loss").values``. A key the run never logged raises
        :class:`MetricNotFoundError`, which names the closest keys it has."""
        from stepline.logbook.index import TornIndexError

        node = node_of_key(key)
        part_id = node_part_id(self.id, node) if node else None
        part = self._part(part_id) if part_id in node_part_ids(self.meta) else None
        if part is not None:
            return part.series(key)
        index = self.index()
        column = index.columns.get(key)
        if column is None:
            raise metric_not_found(key, list(index.columns), f"run {self.id}")
        if column.exact:
            try:
                found = index.series(key)
            except TornIndexError:
                pass
            else:
                return Series(key, found["step"].tolist(), column.typed(found["value"]), found["time"].tolist(),
                              _epochs(found["epoch"]))
        return self._parsed_series(key)

    def _parsed_series(self, key: str) -> Series:
        """One metric read from the whole file: values the index cannot hold exactly, or a torn index."""
        series = Series(key)
        for record in self.records(events.METRICS):
            values = record.get("values") or {}
            if key in values:
                series.steps.append(record.get("step"))
                series.values.append(values[key])
                series.times.append(record.get("time"))
                series.epochs.append(record.get("epoch"))
        return series

    def index(self) -> MetricIndex:
        """The run's metrics index, current as of this call (numpy arrays; see stepline/logbook/index.py)."""
        optional_import("numpy", "reading a run's metrics", "pip install numpy")
        from stepline.logbook.index import read_index

        index = read_index(self.path)
        # A last line without its newline is torn too, unless a live writer is finishing it: the index leaves it
        torn = index.tail.torn_lines + (index.unread_bytes() > 0)
        self.problems["torn_lines"] = max(self.problems["torn_lines"], torn)
        self.problems["duplicate_records"] = max(self.problems["duplicate_records"], index.tail.duplicate_records)
        return index

    def logs(self, level: str | None = None) -> list[dict[str, Any]]:
        """Log lines (``time``, ``level``, ``message``, ``context``), optionally of one level."""
        wanted = level.upper() if level else None
        return [
            {"time": r.get("time"), "level": r.get("level"), "message": r.get("message"),
             "context": r.get("context") or {}}
            for r in self.records(events.LOG)
            if wanted is None or r.get("level") == wanted
        ]

    def media(self, key: str | None = None) -> list[dict[str, Any]]:
        """Media logged (of ``key``, or all), in logged order: ``step``, ``time``, ``key``, ``kind`` and
        ``items``, each item with the ``path`` of its file (a text's ``text`` read in; a histogram's ``counts``
        and ``edges`` inline). ``run.media("samples")[-1]["items"][0]["path"]``."""
        found = []
        for record in self.records(events.MEDIA):
            if key is not None and record.get("key") != key:
                continue
            items = []
            for item in record.get("items") or []:
                item = dict(item)
                if isinstance(item.get("file"), str):
                    item["path"] = self.path / item["file"]
                    if record.get("kind") == "text":
                        item["text"] = item["path"].read_text("utf-8", errors="replace")
                items.append(item)
            found.append({"step": record.get("step"), "time": record.get("time"), "key": record.get("key"),
                          "kind": record.get("kind"), "items": items})
        return found

    def files(self) -> list[str]:
        """The run's files, relative to its ``files/`` folder, sorted."""
        return layout.list_files(self.path / layout.FILES_DIR)

    def file_path(self, relative: str) -> Path:
        """Where one of the run's files lies; the name is validated, so it never leaves ``files/``."""
        return layout.file_path(self.path, relative)

    def positions(self) -> tuple[int, int | None]:
        """``(largest seq, largest step)`` written so far: where a resumed run carries on. The metrics' are
        read from the index: resuming a long run does not parse it."""
        import numpy as np

        from stepline.logbook.index import TornIndexError

        max_seq = max((record.get("seq") or 0 for kind in (events.PARAMS, events.LOG)
                       for record in self.records(kind)), default=0)
        media = list(self.records(events.MEDIA))  # a call that logged media only has a step too
        max_seq = max([max_seq, *(record.get("seq") or 0 for record in media)])
        index = self.index()
        try:
            steps = index.record_field("step")
        except TornIndexError:
            steps = np.array([r["step"] for r in self.records(events.METRICS) if type(r.get("step")) is int])
        media_steps = [r["step"] for r in media if type(r.get("step")) is int]
        max_step = max([*([int(steps.max())] if len(steps) else []), *media_steps], default=None)
        return max(max_seq, index.tail.last_seq), max_step

    def to_pandas(self) -> Any:
        """The metrics as a pandas DataFrame, one row per log call (``pip install 'stepline[pandas]'``)."""
        pandas = optional_import("pandas", "RunView.to_pandas()", "pip install 'stepline[pandas]'")
        return pandas.DataFrame(self.metrics())
