"""The shipper: follows a run's local logbook (the write-ahead copy) and sends the server what it lacks.

    shipper = Shipper(run_path, RemoteClient(url))
    shipper.ship()            # one round: records in seq order per file, then the metadata, then new files
    shipper.unsent()          # records (and files) the server does not have yet

The server stores each (run, file, seq) once, so a round repeated after a lost answer doubles nothing:
delivery is at least once and the result exactly once. `stepline sync` and live runs share this code.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stepline import events
from stepline.config import logbook_root
from stepline.errors import start_thread, warn
from stepline.logbook import layout
from stepline.logbook.tail import RecordTail
from stepline.remote.client import RemoteRejected, RemoteUnauthorized, RemoteUnavailable
from stepline.urls import redacted

if TYPE_CHECKING:
    from stepline.remote.registry import Backend

BATCH_RECORDS = 5000
# Params before metrics: a peer that keeps one config per run (Trackio) gets it with the first point.
SHIP_ORDER = (events.PARAMS, events.METRICS, events.LOG)
POLL_INTERVAL = 0.5
PATIENCE = 5.0  # seconds finish() waits for a backend that is up before it says that it waits, and how long
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

    def __init__(self, shipper: Shipper, backend: Backend) -> None:
        self.shipper = shipper
        self.url = backend.url
        self.shown_url = redacted(backend.url)  # messages never show a password
        self._token_given = bool(backend.token or os.environ.get("STEPLINE_TOKEN"))
        self._stop = threading.Event()
        self._rejected: RemoteRejected | None = None
        self._away = False  # the last round could not reach the backend
        self._thread = start_thread(self._loop, "stepline-shipper")

    def _loop(self) -> None:
        delay, warned = POLL_INTERVAL, False
        while True:
            final = self._stop.is_set()  # decided before the round, so the last round sees the last records
            try:
                self.shipper.ship()
                if final:
                    return
                delay, warned, self._away = POLL_INTERVAL, False, False
            except RemoteRejected as err:
                self._rejected = err
                warn(f"stepline: {err}. Nothing more is sent; the run stays complete in the local logbook "
                     f"({self.shipper.path}); once this is fixed, send it with: {self.sync_command()}")
                return
            except RemoteUnavailable as err:
                self._away = True
                if not warned:
                    warn(f"stepline: {err}; training goes on, the local logbook keeps everything, and "
                         "sending resumes when the server is back")
                    warned = True
                delay = min(MAX_BACKOFF, delay * 2) * random.uniform(0.8, 1.2)
                if final:  # finishing: keep trying until close() stops waiting, but never in a tight loop
                    time.sleep(min(delay, 2.0))
                    continue
            self._stop.wait(delay)

    def sync_command(self) -> str:
        """The command that sends this run later, with the options it needs to find the run and get in."""
        root = self.shipper.path.parent.parent
        command = f"stepline sync {self.shipper.path.name} --remote {self.shown_url}"
        if root.resolve() != logbook_root().resolve():
            command += f" --dir {root}"
        if "+" not in self.url.split("://", 1)[0] and (self._token_given or isinstance(self._rejected,
                                                                                      RemoteUnauthorized)):
            command += " --token <your token>"  # a stepline server's: never printed, but asked for
        return command

    def close(self, timeout: float | None) -> bool:
        """Send what is left within ``timeout`` seconds; if some is left, say exactly what and how to send it.
        With the backend away (or slow for PATIENCE seconds), say at once that it waits, for how long, and that
        the run is safe."""
        self._stop.set()
        started = time.monotonic()
        if not self._away:
            self._thread.join(PATIENCE if timeout is None else min(PATIENCE, timeout))
        waited = time.monotonic() - started
        if self._thread.is_alive() and (timeout is None or timeout > waited + 0.5):
            limit = "until it answers" if timeout is None else f"up to {timeout - waited:.0f} s"
            warn(f"stepline: waiting {limit} for {self.shown_url} to take the rest of run "
                 f"{self.shipper.path.name} (STEPLINE_REMOTE_TIMEOUT sets how long). The run is complete in "
                 f"the local logbook ({self.shipper.path}); anything left is sent later with: "
                 f"{self.sync_command()}")
            self._thread.join(None if timeout is None else timeout - waited)
        unsent = self.shipper.unsent() if self._thread.is_alive() or self._rejected else 0
        if unsent:
            warn(f"stepline: {unsent} records or files of run {self.shipper.path.name} are not on {self.shown_url} "
                 f"yet; they are safe in {self.shipper.path}. Send them with: {self.sync_command()}")
        return unsent == 0
