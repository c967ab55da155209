"""The default sink: appends records to the run's folder in the embedded logbook, and keeps its index."""

from __future__ import annotations

import errno
import os
import shutil
import time
import traceback
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from stepline import events
from stepline.config import logbook_index_enabled
from stepline.errors import warn
from stepline.logbook import layout
from stepline.sinks.base import Sink

if TYPE_CHECKING:
    from stepline.logbook.index import MetricIndex
    from stepline.metrics_batch import MetricsBatch, ReceivedLines, RecordColumns

_BUFFER_BYTES = 1 << 20
# Errors that come from a file's name, which no retry mends: a file where a folder must be, or the reverse.
_NAME_ERRORS = frozenset((errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.ENAMETOOLONG))
# Seconds between two writes of the index's state: readers take in from the JSONL what was written since.
INDEX_STATE_INTERVAL = 1.0


class LogbookSink(Sink):
    """Writes one run's records into ``<root>/<project>/<run id>/``.

        sink = LogbookSink(run_path, meta)   # meta.json already written by init
    """

    name = "logbook"

    def __init__(self, run_path: Path, meta: dict[str, Any], *,
                 index_state_interval: float = INDEX_STATE_INTERVAL) -> None:
        self._path = run_path
        self._meta = dict(meta)
        self._meta_dirty = False
        self._files: dict[str, IO[bytes]] = {}
        self._warned_escapes = False
        self._warned_meta = False
        # The index of metrics.jsonl, kept by this sink once it opens the file (None: not kept).
        self._index: MetricIndex | None = None
        self._keep_index = logbook_index_enabled() and _index_module_loads()
        self._next_index_state = 0.0
        self._index_state_interval = index_state_interval

    def write(self, records: list[dict[str, Any]], lines: list[bytes] | None = None) -> None:
        """Write records; with ``lines``, each record's line as received (checked to hold that record, with no
        newline), written as it is instead of encoded again (a server storing what a client sent)."""
        done = 0
        try:
            while done < len(records):
                end = _end_of_metrics(records, done)
                if end > done:
                    self._write_metrics(records[done:end], lines[done:end] if lines else None)
                    done = end
                else:
                    self._write_other(records[done], lines[done] if lines else None)
                    done += 1
        except OSError as err:
            err.records_written = done  # type: ignore[attr-defined]  # the records before it need no retry
            self._drop_index()
            raise

    def write_metrics(self, batch: MetricsBatch) -> None:
        """A writer's batch of plain metrics calls, a native segment's: its lines and the index's columns, written
        with the interpreter lock released."""
        encoded = batch.encoded()
        self._write_batch(batch, encoded.lines, encoded.columns)

    def write_lines(self, received: ReceivedLines) -> None:
        """Metrics lines a server received from a shipper, read natively: written as they came, and indexed from
        their columns."""
        self._write_batch(received, received.lines, received.columns())

    def _write_batch(self, batch: MetricsBatch | ReceivedLines, lines: bytes, columns: RecordColumns) -> None:
        try:
            self._file(events.METRICS).write(lines)
        except OSError as err:
            err.records_written = 0  # type: ignore[attr-defined]
            self._drop_index()
            raise
        if self._index is not None:
            self._indexing(self._index.add_batch, batch, columns)

    def _write_metrics(self, records: list[dict[str, Any]], received: list[bytes] | None) -> None:
        """Metrics records, written (and indexed) together: most of what a run writes."""
        handle = self._file(events.METRICS)
        if received:
            handle.write(b"\n".join([*received, b""]))  # each line with its newline, in one copy of the bytes
        else:
            try:
                lines = events.encode_many(records)
            except orjson.JSONEncodeError:  # one of them holds text JSON cannot: each on its own
                encoded = [(record, self._encoded(record)) for record in records]
                # indexed as written: text JSON cannot hold is escaped in the file, so in the index too
                records = [events.escaped(record) for record, line in encoded if line is not None]
                lines = b"".join(line for _, line in encoded if line is not None)
            handle.write(lines)
        if self._index is not None:
            self._indexing(self._index.add, records)

    def _write_other(self, record: dict[str, Any], received: bytes | None) -> None:
        kind = record["type"]
        if kind == events.MEDIA and "payload" in record:
            record = self._media_stored(record)
            if not record:
                return
        if kind in layout.RECORD_FILES:
            line = received + b"\n" if received else self._encoded(record)
            if line is not None:
                handle = self._file(kind)
                handle.write(line)
                if kind == events.PARAMS:  # out before the records after it: the shipper relies on this order
                    handle.flush()
        elif kind == events.HEARTBEAT:
            self._meta["heartbeat_at"] = record["time"]
            self._meta_dirty = True
        elif kind == events.STATUS:
            self._apply_status(record)
        elif kind == events.SUMMARY:
            self._meta["summary"] = {**(self._meta.get("summary") or {}), **record["data"]}
            self._meta_dirty = True
        elif kind == events.FILE:
            self._save_file(record)

    def _media_stored(self, record: dict[str, Any]) -> dict[str, Any]:
        """A media record's files written (an OSError goes to the writer, which tries again); the record its
        line holds, or {} when it cannot be encoded (said, naming the key: the run goes on)."""
        from stepline.media.encode import stored  # the first media record pays for it, not init

        try:
            return stored(record, self._path)
        except OSError:
            raise
        except Exception as err:
            warn(f"stepline: the {record['kind']} logged as {record['key']!r} at step {record['step']} cannot be "
                 f"stored ({type(err).__name__}: {err}); it is left out")
            return {}

    def _encoded(self, record: dict[str, Any]) -> bytes | None:
        """The record's line; one record that cannot be written is never a reason to stop writing the run."""
        try:
            return events.encode(record)
        except orjson.JSONEncodeError:
            pass
        try:
            line = events.encode(events.escaped(record))
        except (orjson.JSONEncodeError, TypeError, ValueError, OverflowError) as err:
            warn(f"stepline: a {record['type']} record (seq {record.get('seq')}) cannot be written and is left "
                 f"out: {err}")
            return None
        if not self._warned_escapes:
            self._warned_escapes = True
            warn(f"stepline: a {record['type']} record holds text that is not valid Unicode (a lone surrogate, "
                 "as os.fsdecode gives for a file name that is not UTF-8); it is written with such characters "
                 "escaped as \\udcxx")
        return line

    @property
    def meta(self) -> dict[str, Any]:
        """The run's metadata as this sink will next write it."""
        return self._meta

    def replace_meta(self, meta: dict[str, Any]) -> None:
        """Take ``meta`` as the run's metadata (a server taking a remote client's word for its run)."""
        self._meta = dict(meta)
        self._meta_dirty = True

    def flush(self) -> None:
        try:
            for handle in self._files.values():
                handle.flush()
        except OSError:
            self._drop_index()
            raise
        if any(os.fstat(handle.fileno()).st_nlink == 0 for handle in self._files.values()):
            self._recreate()
        if self._index is not None:
            self._indexing(self._store_index, time.monotonic() >= self._next_index_state)
        if self._meta_dirty:
            try:
                layout.write_meta(self._path, self._meta)
            except OSError as err:
                # The records still land (their files are open); the heartbeat and status wait for a later flush.
                if not self._warned_meta:
                    self._warned_meta = True
                    warn(f"stepline: cannot update {self._path / layout.META_FILE} ({err}); the records are still "
                         "written, and the run's status and heartbeat are written once it can be")
                return
            self._meta_dirty = self._warned_meta = False

    def _recreate(self) -> None:
        """The run's files were deleted while open (the folder removed, say): what they held is gone, and new
        records would go to files nobody can read. Make the folder again and write on there."""
        self._drop_index()
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        warn(f"stepline: the run's folder {self._path} was deleted while the run was writing; what it held is "
             "gone. stepline makes it again and writes the records from now on there")
        self._path.mkdir(parents=True, exist_ok=True)
        self._meta_dirty = True

    def close(self) -> None:
        self.flush()
        if self._index is not None:
            self._indexing(self._store_index, True)
            if self._index is not None:
                self._index.release()
                self._index = None
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        if self._meta_dirty:
            raise OSError(f"the run's status could not be written to {self._path / layout.META_FILE}, so it will "
                          "read as crashed once its heartbeat is old")

    def _file(self, kind: str) -> IO[bytes]:
        handle = self._files.get(kind)
        if handle is None:
            path = layout.record_path(self._path, kind)
            handle = open(path, "ab", buffering=_BUFFER_BYTES)
            # A process killed mid-line leaves a torn last line: start ours on a fresh line.
            if handle.tell() > 0 and not _ends_with_newline(path):
                handle.write(b"\n")
            self._files[kind] = handle
            if kind == events.METRICS and self._keep_index:
                handle.flush()
                self._indexing(self._open_index)
        return handle

    # The index (stepline/logbook/index.py): kept beside the file, never at the cost of the file.

    def _open_index(self) -> None:
        from stepline.logbook.index import LOCK_PATIENCE, MetricIndex  # imported by __init__ already

        index = MetricIndex(self._path)
        if not index.own(LOCK_PATIENCE):
            return  # another process keeps it (a reader catching up), or the folder is read-only: readers cope
        self._index = index
        index.take_in(store=True)  # what a killed writer left past the index (all of a run from before it)
        index.write_state()
        self._next_index_state = time.monotonic() + self._index_state_interval

    def _store_index(self, with_state: bool) -> None:
        assert self._index is not None
        self._index.covered_to(self._files[events.METRICS].tell())
        if not with_state:
            self._index.write_rows(settle=False)
        else:
            self._index.write_state()
            self._next_index_state = time.monotonic() + self._index_state_interval

    def _indexing(self, step: Any, *args: Any) -> None:
        """Run one step of keeping the index; if it fails, stop keeping it for this run, and say so."""
        try:
            step(*args)
        except Exception as err:
            detail = str(err) if isinstance(err, OSError) else f"please report this bug:\n{traceback.format_exc()}"
            warn(f"stepline: the index of {self._path / layout.INDEX_DIR} cannot be kept ({detail}); the run's "
                 "records are still written, and readers read them from metrics.jsonl (slower on large runs; "
                 "`stepline reindex` rebuilds the index)")
            self._drop_index()

    def _drop_index(self) -> None:
        if self._index is not None:
            self._index.abandon()
            self._index = None
        self._keep_index = False

    def _apply_status(self, record: dict[str, Any]) -> None:
        status = record["status"]
        self._meta["status"] = status
        self._meta["heartbeat_at"] = record["time"]
        if status == "running":
            self._meta["ended_at"] = None
            self._meta["error"] = None
        else:
            self._meta["ended_at"] = record["time"]
            self._meta["error"] = record.get("error")
        self._meta_dirty = True

    def _save_file(self, record: dict[str, Any]) -> None:
        try:
            self._copy_file(record)
        except OSError as err:
            if err.errno not in _NAME_ERRORS:
                raise  # the disk, not the name: the writer keeps the record and tries again
            warn(f"stepline: the file {record['path']!r} cannot be kept in the run ({err.strerror}: a file and a "
                 "folder of the same name, or a path too long); it is left out")

    def _copy_file(self, record: dict[str, Any]) -> None:
        target = layout.file_path(self._path, record["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        if "data" in record:
            temporary = target.with_name(layout.temporary_name(target.name))
            temporary.write_bytes(record["data"])
            temporary.replace(target)
        elif Path(record["source"]).is_dir():
            shutil.copytree(record["source"], target, dirs_exist_ok=True)
        elif Path(record["source"]).exists():
            shutil.copy2(record["source"], target)
        else:  # gone before the writer got to it (a rotated checkpoint): retrying would not bring it back
            warn(f"stepline: {record['source']} was removed before it could be copied into the run")


def _index_module_loads() -> bool:
    """Import the index (and numpy) now, on the thread that makes the sink: a daemon writer thread must never be
    importing when the interpreter shuts down. False without numpy (a dependency, but gone): readers read
    metrics.jsonl then, and index it themselves."""
    try:
        import stepline.logbook.index  # noqa: F401
    except ImportError:
        return False
    return True


def _end_of_metrics(records: list[dict[str, Any]], start: int) -> int:
    """Where the metrics records from ``start`` on end."""
    if start == 0 and list(map(itemgetter("type"), records)).count(events.METRICS) == len(records):
        return len(records)  # the common batch: nothing but metrics, found at C speed
    end = start
    while end < len(records) and records[end]["type"] == events.METRICS:
        end += 1
    return end


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"
