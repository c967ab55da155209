"""The shipper: follows a run's local logbook (the write-ahead copy) and sends the server what it lacks.

    shipper = Shipper(run_path, RemoteClient(url))
    shipper.ship()            # one round: records in seq order per file, then the metadata, then new files
    shipper.unsent()          # records (and files) the server does not have yet

The server stores each (run, file, seq) once, so a round repeated after a lost answer doubles nothing:
delivery is at least once and the result exactly once. `stepline sync` and live runs share this code.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from stepline import events
from stepline.errors import warn
from stepline.logbook import layout
from stepline.logbook.tail import RecordTail
from stepline.remote.client import RemoteRejected, RemoteUnavailable

BATCH_RECORDS = 5000
# Params before metrics: a peer that keeps one config per run (Trackio) gets it with the first point.
SHIP_ORDER = (events.PARAMS, events.METRICS, events.LOG)
POLL_INTERVAL = 0.5
MAX_BACKOFF = 30.0


class Transport(Protocol):
    """Where a shipper sends a run: a stepline server, a peer tracker, or a store in this process."""

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]: ...

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]: ...

    def upload(self, project: str, run_id: str, relative: str, path: Path) -> dict[str, Any]: ...


class Shipper:
    def __init__(self, run_path: Path, client: Transport) -> None:
        self.path = run_path
        self.client = client
        self._tails = {kind: RecordTail(layout.record_path(run_path, kind)) for kind in SHIP_ORDER}
        self._pending: dict[str, list[dict[str, Any]]] = {kind: [] for kind in layout.RECORD_FILES}
        self._acked: dict[str, int] | None = None
        self._remote_files: dict[str, int] = {}
        self._sent_meta: bytes | None = None
        self.records_sent = 0
        self.files_sent = 0

    def ship(self, progress: Callable[[int], None] | None = None) -> None:
        """Send everything the logbook holds now. Raises RemoteUnavailable / RemoteRejected."""
        meta = layout.read_meta(self.path) or {}
        project, run_id = meta.get("project", self.path.parent.name), meta.get("id", self.path.name)
        if self._acked is None:
            state = self.client.open_run(project, run_id, _opening(meta))
            self._acked = {kind: int(state["max_seq"].get(kind, 0)) for kind in layout.RECORD_FILES}
            self._remote_files = dict(state.get("files") or {})
        # Read the params last: the logbook sink writes a params record out before any record after it, so
        # every params record older than the metrics read here is seen too, and a peer that keeps the config
        # of the run's creation only (TrainTrack) gets it with the first point.
        for kind in reversed(SHIP_ORDER):
            self._pending[kind].extend(r for r in self._read_new(kind) if r["seq"] > self._acked[kind])
        for kind in SHIP_ORDER:
            while self._pending[kind]:
                batch = self._pending[kind][:BATCH_RECORDS]
                answer = self.client.send_events(project, run_id, batch)
                self._acked[kind] = int(answer["max_seq"].get(kind, batch[-1]["seq"]))
                del self._pending[kind][: len(batch)]
                self.records_sent += len(batch)
                if progress:
                    progress(len(batch))
        self._ship_files(project, run_id)
        encoded = repr(sorted(meta.items())).encode()
        if encoded != self._sent_meta:  # status, heartbeat and summary, after the records they follow
            self.client.open_run(project, run_id, _opening(meta))
            self._sent_meta = encoded

    def _read_new(self, kind: str) -> list[dict[str, Any]]:
        tail = self._tails[kind]
        records = tail.read_new()
        if records is None:  # the file was rewritten: start over, the server drops what it has
            self._tails[kind] = tail = RecordTail(tail.path)
            records = tail.read_new() or []
        return records

    def unsent(self) -> int:
        """Records and files known not to be on the server: queued here, or still unread in the local files."""
        pending = sum(len(p) for p in self._pending.values())
        unread = sum(_lines_after(tail.path, tail.offset) for tail in self._tails.values())
        local_files = layout.list_files(self.path / layout.FILES_DIR)
        return pending + unread + sum(1 for name in local_files if name not in self._remote_files)

    def _ship_files(self, project: str, run_id: str) -> None:
        base = self.path / layout.FILES_DIR
        for name in layout.list_files(base):
            size = (base / name).stat().st_size
            if self._remote_files.get(name) != size:
                self.client.upload(project, run_id, name, base / name)
                self._remote_files[name] = size
                self.files_sent += 1


def redacted(url: str) -> str:
    """``url`` with any password in it replaced by ``***``."""
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at or "/" in userinfo or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _lines_after(path: Path, offset: int) -> int:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _opening(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key != "format"}


class ShipperThread:
    """Ships a live run in the background: every half second, backing off while the server is away."""

    def __init__(self, shipper: Shipper, url: str) -> None:
        self.shipper = shipper
        self.url = url
        self.shown_url = redacted(url)  # messages never show a password
        self._stop = threading.Event()
        self._rejected: str | None = None
        self._thread = threading.Thread(target=self._loop, name="stepline-shipper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay, warned = POLL_INTERVAL, False
        while True:
            final = self._stop.is_set()  # decided before the round, so the last round sees the last records
            try:
                self.shipper.ship()
                if final:
                    return
                delay, warned = POLL_INTERVAL, False
            except RemoteRejected as err:
                self._rejected = str(err)
                warn(f"stepline: {err}. Nothing more is sent; the run stays complete in the local logbook "
                     f"({self.shipper.path}) for `stepline sync` once this is fixed.")
                return
            except RemoteUnavailable as err:
                if not warned:
                    warn(f"stepline: {err}; training goes on, the local logbook keeps everything, and "
                         "sending resumes when the server is back")
                    warned = True
                delay = min(MAX_BACKOFF, delay * 2) * random.uniform(0.8, 1.2)
                if final:  # finishing: keep trying until close() stops waiting, but never in a tight loop
                    time.sleep(min(delay, 2.0))
                    continue
            self._stop.wait(delay)

    def close(self, run_id: str, timeout: float | None) -> bool:
        """Send what is left within ``timeout`` seconds; if some is left, say exactly what and how to send it."""
        self._stop.set()
        self._thread.join(timeout)
        unsent = self.shipper.unsent() if self._thread.is_alive() or self._rejected else 0
        if unsent:
            warn(f"stepline: {unsent} records or files of run {run_id} are not on {self.shown_url} yet; they are "
                 f"safe in {self.shipper.path}. Send them with: stepline sync {run_id} --remote {self.shown_url}")
        return unsent == 0
