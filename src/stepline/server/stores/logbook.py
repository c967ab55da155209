"""The default store: a logbook folder, the same one training processes write into.

Runs are read through per-run caches that parse only appended bytes, and their points from each run's
index; both are kept in one cache bounded by bytes (``STEPLINE_SERVER_CACHE_MB``). Runs pushed over HTTP are
written with the logbook's own sink, so a served folder and a local one look alike (docs/format.md).

    store = LogbookStore("stepline_logs")
    store.runs("mnist")                      # every run's overview, current as of this call
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from stepline import events
from stepline.config import heartbeat_timeout as configured_heartbeat_timeout
from stepline.config import logbook_root, server_cache_bytes
from stepline.errors import ConflictError, RunNotFoundError
from stepline.job import is_node_part
from stepline.logbook import layout
from stepline.logbook.columns import epochs_or_nan
from stepline.logbook.index import TornIndexError
from stepline.logbook.reader import derived_status
from stepline.logbook.tail import RecordTail
from stepline.metrics_batch import ReceivedLines
from stepline.names import check_project
from stepline.server.auth import AuthFile
from stepline.server.stores.base import (
    IDEMPOTENCY_KEY,
    MadeRecords,
    RunState,
    SeriesPoints,
    check_axis,
    check_project_deletable,
    check_run_deletable,
    not_stored_yet,
    oldest_first,
    opened_meta,
    overview,
    series_points,
)
from stepline.server.stores.byte_lru import ByteLRU
from stepline.server.stores.logbook_cache import RunCache
from stepline.sinks.logbook import LogbookSink

_CHUNK = 1 << 20


class LogbookStore:
    """Runs of one logbook folder."""

    def __init__(self, root: str | Path | None = None, *, heartbeat_timeout: float | None = None,
                 cache_mb: int | None = None) -> None:
        self.root = logbook_root(root)
        self.heartbeat_timeout = heartbeat_timeout or configured_heartbeat_timeout()
        # ("run", path) -> RunCache: what the server holds in memory between requests
        self._cache = ByteLRU(server_cache_bytes(cache_mb))
        self._writers: dict[Path, LogbookRunWriter] = {}
        self._metas: dict[str, dict[str, dict[str, Any]]] = {}  # project -> run id -> meta as made (runs_named)
        self._lock = threading.Lock()
        self._naming = threading.Lock()  # open_named's find-or-make, one at a time

    def describe(self) -> str:
        return str(self.root.resolve())

    def memory_held(self) -> tuple[int, int]:
        """(bytes the store keeps between requests, the most it may keep)."""
        return self._cache.size, self._cache.limit

    def accounts(self) -> AuthFile:
        return AuthFile(self.root)

    def projects(self) -> list[dict[str, Any]]:
        found = []
        for project in layout.iter_projects(self.root):
            runs = self.runs(project)
            created = layout.project_dir(self.root, project).stat().st_mtime
            last = max([r["last_activity"] or 0.0 for r in runs], default=created)
            found.append({"name": project, "runs": len(runs), "last_activity": last})
        return found

    def create_project(self, project: str) -> None:
        layout.project_dir(self.root, project).mkdir(parents=True, exist_ok=True)

    def has_project(self, project: str) -> bool:
        return layout.project_dir(self.root, project).is_dir()

    def runs(self, project: str) -> list[dict[str, Any]]:
        check_project(project)
        overviews = []
        for path in layout.iter_run_dirs(self.root, project):
            cache = self._refreshed(path)
            if cache is not None and cache.meta and not is_node_part(cache.meta):  # parts show as their run
                overviews.append(self._overview(cache))
        return oldest_first(overviews)

    def run(self, project: str, run_id: str) -> dict[str, Any]:
        cache = self._run_cache(project, run_id)
        return {**self._overview(cache), "meta": dict(cache.meta)}

    def meta(self, project: str, run_id: str) -> dict[str, Any]:
        return dict(self._run_cache(project, run_id).meta)

    def runs_named(self, project: str, name: str) -> list[dict[str, Any]]:
        check_project(project)
        with self._lock:
            # A run's name and tags are fixed when it is made: read each new run's meta once, and each call
            # only lists the folder, to learn of runs made or deleted since (by this server or not).
            known = self._metas.setdefault(project, {})
            folder = layout.project_dir(self.root, project)
            try:
                present = {entry.name for entry in os.scandir(folder) if entry.is_dir()}
            except FileNotFoundError:
                present = set()
            for gone in known.keys() - present:
                del known[gone]
            for new in present - known.keys():
                meta = layout.read_meta(folder / new)  # None: not a run, or one whose meta is not written yet
                if meta is not None:
                    known[new] = {**meta, "id": new}
            named = [meta for meta in known.values() if meta.get("name", meta["id"]) == name]
        return oldest_first(named)

    def metric_keys(self, project: str, run_id: str) -> list[str]:
        return list(self._run_cache(project, run_id).index.columns)

    def series(self, project: str, run_id: str, keys: list[str], x: str, points: int | None,
               after: int) -> list[SeriesPoints]:
        check_axis(x)
        cache = self._run_cache(project, run_id)
        found = []
        for key in keys:
            column = cache.index.columns.get(key)
            if column is None:
                found.append(SeriesPoints.empty(key))
                continue
            # Read from the run's index, the fields asked for and the points past the cursor only: as fast
            # as holding them, and the server's memory does not grow with the runs it has served.
            fields = ("step", "value") if x == "step" else ("step", "value", x)
            try:
                arrays = cache.index.series(key, after, fields)
            except TornIndexError:
                cache.reread_metrics()
                arrays = cache.index.series(key, after, fields)
            if x == "epoch":
                arrays["epoch"] = epochs_or_nan(arrays["epoch"])
            found.append(series_points(key, column.count, arrays, x, points))
        return found

    def metric_rows(self, project: str, run_id: str) -> list[tuple[int, dict[str, float]]]:
        path = self._run_cache(project, run_id).path
        records = RecordTail(layout.record_path(path, events.METRICS)).read_new() or []
        return [(r.get("step", 0), r.get("values") or {}) for r in records]

    def logs(self, project: str, run_id: str, level: str | None, offset: int,
             limit: int) -> tuple[int, list[dict[str, Any]]]:
        lines = self._run_cache(project, run_id).logs
        if level:
            lines = [line for line in lines if line.get("level") == level.upper()]
        return len(lines), lines[offset: offset + limit]

    def files(self, project: str, run_id: str) -> dict[str, int]:
        return _files(self._run_cache(project, run_id).path)

    def read_file(self, project: str, run_id: str, path: str) -> tuple[int, Iterator[bytes]]:
        run_path = self._run_cache(project, run_id).path
        target = layout.file_path(run_path, path)  # validated: no '..', no absolute path
        base = (run_path / layout.FILES_DIR).resolve()
        resolved = target.resolve()
        if not resolved.is_relative_to(base) or not resolved.is_file():  # a symlink pointing out is refused too
            raise RunNotFoundError(f"run {run_id} has no file {path!r}")
        return resolved.stat().st_size, _chunks(resolved)

    def media(self, project: str, run_id: str, key: str | None) -> list[dict[str, Any]]:
        records = self._run_cache(project, run_id).media
        return [record for record in records if key is None or record.get("key") == key]

    def media_file(self, project: str, run_id: str, name: str) -> Path:
        target = layout.media_path(self._run_cache(project, run_id).path, name)
        if not target.is_file():
            raise RunNotFoundError(f"run {run_id} has no media file {name!r}")
        return target

    def delete_run(self, project: str, run_id: str, *, force: bool = False) -> None:
        cache = self._run_cache(project, run_id)
        check_run_deletable(run_id, self._status(cache), force)
        with self._lock:
            self._cache.discard(lambda entry: entry[1] == cache.path)
            self._writers.pop(cache.path, None)
        shutil.rmtree(cache.path)

    def delete_project(self, project: str, *, force: bool = False) -> int:
        if not self.has_project(project):
            raise RunNotFoundError(f"no project {project!r}")
        runs = self.runs(project)
        check_project_deletable(project, runs, force)
        path = layout.project_dir(self.root, project)
        with self._lock:
            self._cache.discard(lambda entry: entry[1].parent == path)
            for run_path in [p for p in self._writers if p.parent == path]:
                del self._writers[run_path]
        shutil.rmtree(path)
        return len(runs)

    def open(self, project: str, run_id: str, meta: dict[str, Any]) -> LogbookRunWriter:
        path = layout.run_dir(self.root, project, run_id)
        meta = opened_meta(project, run_id, meta)
        writer = self._cached(path, meta)
        writer.replace_meta(meta)
        return writer

    def writer(self, project: str, run_id: str) -> LogbookRunWriter:
        path = layout.run_dir(self.root, project, run_id)
        with self._lock:
            writer = self._writers.get(path)
        if writer is not None:
            return writer
        meta = layout.read_meta(path)
        if meta is None:
            raise RunNotFoundError(f"run {run_id} of project {project!r} was never opened: PUT it first")
        return self._cached(path, opened_meta(project, run_id, meta))

    def _cached(self, path: Path, meta: dict[str, Any]) -> LogbookRunWriter:
        """The run's writer: the one this server has already, or a new one starting from ``meta``."""
        with self._lock:
            writer = self._writers.get(path)
            if writer is None:
                path.mkdir(parents=True, exist_ok=True)
                writer = self._writers[path] = LogbookRunWriter(path, meta)
            return writer

    def open_named(self, project: str, name: str, source: str, meta: dict[str, Any]) -> LogbookRunWriter:
        with self._naming:
            found = [meta for meta in self.runs_named(project, name) if source in meta.get("tags", ())]
            if found:
                return self.writer(project, found[-1]["id"])
            return self.open(project, layout.new_run_id(), meta)

    def close(self) -> None:
        with self._lock:
            for writer in self._writers.values():
                writer.sink.close()
            self._writers.clear()

    def _run_cache(self, project: str, run_id: str) -> RunCache:
        cache = self._refreshed(layout.run_dir(self.root, project, run_id))
        if cache is None or not cache.meta:
            raise RunNotFoundError(f"no run {run_id!r} in project {project!r}")
        return cache

    def _status(self, cache: RunCache) -> str:
        return derived_status(cache.meta, self.heartbeat_timeout)

    def _overview(self, cache: RunCache) -> dict[str, Any]:
        meta = {"id": cache.path.name, "project": cache.path.parent.name, **cache.meta}
        metrics = {key: summary.as_dict() for key, summary in cache.index.summaries().items()}
        return overview(meta, self._status(cache), cache.params, cache.index.records, metrics)

    def _refreshed(self, path: Path) -> RunCache | None:
        with self._lock:  # one refresh at a time: each reads only what was appended, so it is quick
            cache = self._cache.get(("run", path))
            if cache is None:
                cache = RunCache(path)
            if not cache.refresh():
                self._cache.discard(lambda entry: entry[1] == path)
                return None
            self._cache.put(("run", path), cache, cache.nbytes())
        return cache


class LogbookRunWriter:
    """Appends records to one run's folder with the logbook's sink, each seq once."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self._lock = threading.Lock()  # this process is the folder's only writer, so this is the run's lock
        # The index's state at every batch: a server's readers read a run just pushed at once, from its index.
        self.sink = LogbookSink(path, meta, index_state_interval=0.0)
        self.max_seq = {kind: _last_seq(layout.record_path(path, kind)) for kind in events.WIRE_RECORDS}
        self._keys: set[str] | None = None  # the idempotency keys held, read from the metrics file at first use

    @property
    def meta(self) -> dict[str, Any]:
        return self.sink.meta

    def replace_meta(self, meta: dict[str, Any]) -> None:
        with self._lock:
            self._replace_meta(meta)

    def append(self, records: list[dict[str, Any]], lines: list[bytes] | None = None) -> tuple[int, int]:
        with self._lock:
            return self._append(records, lines)

    def append_lines(self, received: ReceivedLines) -> tuple[int, int]:
        with self._lock:
            stored = self.max_seq[events.METRICS]
            if received.first_seq > stored:  # a shipper's next batch: the body as it came, indexed from columns
                self.sink.write_lines(received)
                self.sink.flush()
                self.max_seq[events.METRICS] = received.last_seq
                return len(received), 0
            if received.last_seq <= stored:  # sent again after a lost answer
                return 0, len(received)
            return self._append(received.records, received.body.splitlines())

    def append_made(self, make: MadeRecords) -> int:
        with self._lock:
            records, meta = make(RunState(dict(self.max_seq), self.meta, self._stored_keys))
            if meta is not None:
                self._replace_meta(meta)
            return self._append(records)[0] if records else 0

    def _replace_meta(self, meta: dict[str, Any]) -> None:
        self.sink.replace_meta(meta)
        self.sink.flush()

    def _append(self, records: list[dict[str, Any]], lines: list[bytes] | None = None) -> tuple[int, int]:
        fresh = not_stored_yet(records, self.max_seq)
        if lines is not None and len(fresh) < len(records):
            kept = set(map(id, fresh))
            lines = [line for record, line in zip(records, lines) if id(record) in kept]
        self.sink.write(fresh, lines)
        self.sink.flush()
        if self._keys is not None:
            self._keys.update(r[IDEMPOTENCY_KEY] for r in fresh if IDEMPOTENCY_KEY in r)
        return len(fresh), len(records) - len(fresh)

    def _stored_keys(self, keys: Collection[str]) -> set[str]:
        if self._keys is None:
            records = RecordTail(layout.record_path(self.path, events.METRICS)).read_new() or []
            self._keys = {r[IDEMPOTENCY_KEY] for r in records if IDEMPOTENCY_KEY in r}
        return self._keys.intersection(keys)

    def files(self) -> dict[str, int]:
        return _files(self.path)

    def receive_media(self, name: str) -> _FileReceiver:
        return _FileReceiver(layout.media_path(self.path, name))

    def receive_file(self, path: str) -> _FileReceiver:
        try:
            return _FileReceiver(layout.file_path(self.path, path))
        except (NotADirectoryError, FileExistsError, IsADirectoryError):
            raise ConflictError(f"cannot keep {path!r}: the run has a file where it needs a folder, or the "
                                "reverse") from None


class _FileReceiver:
    """An upload written beside its target and moved into place whole."""

    def __init__(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.temporary = target.with_name(layout.temporary_name(target.name))
        self.handle = open(self.temporary, "wb")
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.size += len(chunk)

    def commit(self) -> int:
        self.handle.close()
        self.temporary.replace(self.target)
        return self.size

    def abort(self) -> None:
        self.handle.close()
        self.temporary.unlink(missing_ok=True)


def _files(run_path: Path) -> dict[str, int]:
    base = run_path / layout.FILES_DIR
    return {name: (base / name).stat().st_size for name in layout.list_files(base)}


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _last_seq(path: Path) -> int:
    tail = RecordTail(path)
    tail.read_new()
    return tail.last_seq
