"""The default sink: appends records to the run's folder in the embedded logbook."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO, Any

from stepline import events
from stepline.errors import warn
from stepline.logbook import layout
from stepline.sinks.base import Sink

_BUFFER_BYTES = 1 << 20


class LogbookSink(Sink):
    """Writes one run's records into ``<root>/<project>/<run id>/``.

        sink = LogbookSink(run_path, meta)   # meta.json already written by init
    """

    name = "logbook"

    def __init__(self, run_path: Path, meta: dict[str, Any]) -> None:
        self._path = run_path
        self._meta = dict(meta)
        self._meta_dirty = False
        self._files: dict[str, IO[bytes]] = {}

    def write(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            kind = record["type"]
            if kind in layout.RECORD_FILES:
                handle = self._file(kind)
                handle.write(events.encode(record))
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

    @property
    def meta(self) -> dict[str, Any]:
        """The run's metadata as this sink will next write it."""
        return self._meta

    def replace_meta(self, meta: dict[str, Any]) -> None:
        """Take ``meta`` as the run's metadata (a server taking a remote client's word for its run)."""
        self._meta = dict(meta)
        self._meta_dirty = True

    def flush(self) -> None:
        for handle in self._files.values():
            handle.flush()
        if self._meta_dirty:
            layout.write_meta(self._path, self._meta)
            self._meta_dirty = False

    def close(self) -> None:
        self.flush()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _file(self, kind: str) -> IO[bytes]:
        handle = self._files.get(kind)
        if handle is None:
            path = layout.record_path(self._path, kind)
            handle = open(path, "ab", buffering=_BUFFER_BYTES)
            # A process killed mid-line leaves a torn last line: start ours on a fresh line.
            if handle.tell() > 0 and not _ends_with_newline(path):
                handle.write(b"\n")
            self._files[kind] = handle
        return handle

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


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"
