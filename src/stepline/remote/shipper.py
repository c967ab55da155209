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
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from stepline import events
from stepline.config import logbook_root
from stepline.errors import start_thread, warn
from stepline.logbook import layout
from stepline.logbook.tail import LineBatch, LineCounts, count_lines, decode_lines, line_batch, whole_lines
from stepline.remote.client import RemoteRejected, RemoteUnauthorized, RemoteUnavailable
from stepline.urls import redacted

if TYPE_CHECKING:
    from stepline.remote.registry import Backend

BATCH_RECORDS = 5000
READ_BYTES = 8 << 20  # read of a record file at a time, so a large backlog never needs its size in memory
# A stepline server takes bigger batches (up to 64 MB and 100,000 records): fewer round trips, each of which
# waits for its answer. 8 MB was no faster than 4 (30 pairs of benchmarks/remote_ingest.py's loop, in turn:
# ahead in 13, behind in 14), and holds twice the memory on both sides.
LINE_BATCH_BYTES = 4 << 20
LINE_BATCH_RECORDS = 50_000
SHIP_ORDER = events.WIRE_RECORDS
POLL_INTERVAL = 0.5
WAKE_RECORDS = 10_000  # written records that start a round before the poll would
PATIENCE = 5.0  # seconds finish() waits for a backend that is up before it says that it waits, and how long
MAX_BACKOFF = 30.0


class Transport(Protocol):
    """Where a shipper sends a run: a stepline server, a peer tracker, or a store in this process."""

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]: ...

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]: ...

    def upload(self, project: str, run_id: str, relative: str, path: Path) -> dict[str, Any]: ...


@runtime_checkable
class LineTransport(Protocol):
    """A transport that takes the logbook's lines as they are on disk (a stepline server: it parses, checks and
    dedupes them itself), so the shipper neither decodes nor encodes them."""

    def send_lines(self, project: str, run_id: str, lines: bytes) -> dict[str, Any]: ...


@runtime_checkable
class MediaTransport(Protocol):
    """A transport that keeps media (a stepline server, a store): each file is uploaded before its record."""

    def upload_media(self, project: str, run_id: str, name: str, path: Path) -> dict[str, Any]: ...


class FileCursor:
    """How far one record file is shipped: the offset read to, and the records decoded but not yet sent (for a
    transport that takes records)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.counts = LineCounts()  # the reading rule's state, for records decoded here
        self.pending: list[dict[str, Any]] = []  # records decoded and not yet sent, in file order

    def readable_end(self) -> int:
        """The file's size now; a file that shrank was rewritten, and is read again from the start (the server
        keeps each seq once)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.offset:
            self.offset, self.counts, self.pending = 0, LineCounts(), []
        return size


class Shipper:
    def __init__(self, run_path: Path, client: Transport) -> None:
        self.path = run_path
        self.client = client
        # Media go to a transport that keeps them; for the others they stay in the local logbook (said once).
        self._kinds = tuple(kind for kind in SHIP_ORDER
                            if kind != events.MEDIA or isinstance(client, MediaTransport))
        self._cursors = {kind: FileCursor(layout.record_path(run_path, kind)) for kind in self._kinds}
        self._media_sent: set[str] = set()
        self._said_no_media = False
        self._acked: dict[str, int] | None = None
        self._remote_files: dict[str, int] = {}
        self._sent_meta: bytes | None = None
        self.records_sent = 0
        self.files_sent = 0

    def ship(self, progress: Callable[[int], None] | None = None) -> int:
        """Send everything the logbook holds now; how many records that was. Raises RemoteUnavailable /
        RemoteRejected."""
        sent_before = self.records_sent
        meta = layout.read_meta(self.path) or {}
        project, run_id = meta.get("project", self.path.parent.name), meta.get("id", self.path.name)
        if self._acked is None:
            state = self.client.open_run(project, run_id, _opening(meta))
            self._acked = {kind: int(state["max_seq"].get(kind, 0)) for kind in self._kinds}
            self._remote_files = dict(state.get("files") or {})
        # Find where the params end last: the logbook sink writes a params record out before any record after
        # it, so every params record older than the metrics shipped here is shipped too, and a peer that keeps
        # the config of the run's creation only (TrainTrack) gets it with the first point.
        stops = {kind: self._cursors[kind].readable_end() for kind in reversed(self._kinds)}
        self._say_if_media_stay()
        for kind in self._kinds:
            if isinstance(self.client, LineTransport):
                self._ship_lines(self.client, project, run_id, kind, stops[kind], progress)
            else:
                self._ship_records(project, run_id, kind, stops[kind], progress)
        self._ship_files(project, run_id)
        encoded = repr(sorted(meta.items())).encode()
        if encoded != self._sent_meta:  # status, heartbeat and summary, after the records they follow
            self.client.open_run(project, run_id, _opening(meta))
            self._sent_meta = encoded
        return self.records_sent - sent_before

    def _ship_lines(self, client: LineTransport, project: str, run_id: str, kind: str, stop: int,
                    progress: Callable[[int], None] | None) -> None:
        """Send a file's lines up to ``stop`` as they are on disk, in batches of whole lines."""
        cursor = self._cursors[kind]
        while cursor.offset < stop:
            batch = line_batch(cursor.path, cursor.offset, stop, LINE_BATCH_BYTES, LINE_BATCH_RECORDS)
            if not batch.lines:
                return  # a line not finished yet
            chunk, lines = _unacked_lines(batch, kind, self._acked_of(kind))
            if chunk:
                if kind == events.MEDIA:
                    self._upload_media(project, run_id, decode_lines(chunk.split(b"\n"), LineCounts()))
                self._sent(self._send_lines(client, project, run_id, kind, chunk, lines), progress)
            cursor.offset = batch.end

    def _send_lines(self, client: LineTransport, project: str, run_id: str, kind: str, chunk: bytes,
                    lines: int) -> int:
        """Send ``lines`` lines; how many records they held."""
        acked = self._acked_of(kind)
        try:
            answer = client.send_lines(project, run_id, chunk)
            sent = lines
        except RemoteUnauthorized:
            raise
        except RemoteRejected:  # a torn line among them, maybe: send what the reading rule takes of them
            counts = LineCounts()
            counts.last_seq = acked
            records = list(decode_lines(chunk.split(b"\n"), counts))
            if not records:
                return 0
            answer = self.client.send_events(project, run_id, records)
            sent = len(records)
        self._set_acked(kind, answer["max_seq"].get(kind, acked))
        return sent

    def _ship_records(self, project: str, run_id: str, kind: str, stop: int,
                      progress: Callable[[int], None] | None) -> None:
        """Send a file's records up to ``stop``, decoded by the reading rule, to a transport that needs them so."""
        cursor = self._cursors[kind]
        while True:
            if not cursor.pending:
                chunk, end = whole_lines(cursor.path, cursor.offset, stop, READ_BYTES)
                if not chunk:
                    return
                cursor.offset = end
                acked = self._acked_of(kind)
                cursor.pending = [r for r in decode_lines(chunk.split(b"\n"), cursor.counts) if r["seq"] > acked]
                continue
            batch = cursor.pending[:BATCH_RECORDS]
            if kind == events.MEDIA:
                self._upload_media(project, run_id, batch)
            answer = self.client.send_events(project, run_id, batch)
            self._set_acked(kind, answer["max_seq"].get(kind, batch[-1]["seq"]))
            del cursor.pending[: len(batch)]
            self._sent(len(batch), progress)

    def _upload_media(self, project: str, run_id: str, records: Iterable[dict[str, Any]]) -> None:
        """Upload the files of media records not uploaded yet, before the records that name them."""
        assert isinstance(self.client, MediaTransport)
        for record in records:
            for item in record.get("items") or ():
                name = layout.media_name(item)
                if name is None:
                    continue
                path = layout.media_path(self.path, name)
                if name not in self._media_sent and path.is_file():
                    self.client.upload_media(project, run_id, name, path)
                    self._media_sent.add(name)

    def _say_if_media_stay(self) -> None:
        if self._said_no_media or events.MEDIA in self._kinds:
            return
        media = layout.record_path(self.path, events.MEDIA)
        if media.is_file() and media.stat().st_size:
            self._said_no_media = True
            warn(f"stepline: {type(self.client).__name__} gets no media (images, histograms, tables, text, audio) "
                 f"yet; they stay in the local logbook ({self.path})")

    def _sent(self, count: int, progress: Callable[[int], None] | None) -> None:
        self.records_sent += count
        if progress:
            progress(count)

    def _set_acked(self, kind: str, seq: int) -> None:
        assert self._acked is not None
        self._acked[kind] = int(seq)

    def _acked_of(self, kind: str) -> int:
        assert self._acked is not None, "ship() opens the run first"
        return self._acked[kind]

    def unsent(self) -> int:
        """Records and files known not to be on the server: read but not sent, or still unread in the files."""
        pending = sum(len(cursor.pending) for cursor in self._cursors.values())
        unread = sum(count_lines(cursor.path, cursor.offset) for cursor in self._cursors.values())
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


def _unacked_lines(batch: LineBatch, kind: str, acked: int) -> tuple[bytes, int]:
    """The batch's lines past the first ones the backend has (by their seq, where a line shows it as stepline
    writes it; a line whose seq cannot be seen this way is kept, for the backend to judge), and no empty line;
    and how many lines that is."""
    chunk, lines = batch.lines, batch.line_count
    if batch.has_empty_line:
        kept = [line for line in chunk.split(b"\n")[:-1] if line]
        chunk, lines = b"".join(line + b"\n" for line in kept), len(kept)
    last = _seq_of(chunk[chunk.rfind(b"\n", 0, len(chunk) - 1) + 1:], kind)
    if last is not None and last <= acked:
        return b"", 0
    start = 0
    while start < len(chunk):
        seq = _seq_of(chunk[start:chunk.find(b"\n", start)], kind)
        if seq is None or seq > acked:
            break
        start = chunk.find(b"\n", start) + 1
        lines -= 1
    return chunk[start:], lines


def _seq_of(line: bytes, kind: str) -> int | None:
    """The seq of a line as stepline's encoder writes it (``{"type":"<kind>","seq":<n>,...``); None otherwise."""
    prefix = _SEQ_PREFIXES[kind]
    if not line.startswith(prefix):
        return None
    found = _DIGITS.match(line, len(prefix))
    return int(found.group()) if found else None


_SEQ_PREFIXES = {kind: b'{"type":"%s","seq":' % kind.encode() for kind in SHIP_ORDER}
_DIGITS = re.compile(rb"[0-9]{1,19}(?=[,}])")


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
        self._wake = threading.Event()  # set by close(), and by written() once a batch's worth is waiting
        self._written = 0  # records the run's writer wrote since this round began
        self._rejected: RemoteRejected | None = None
        self._broken = False  # the thread stopped on an unexpected error
        self._away = False  # the last round could not reach the backend
        self._thread = start_thread(self._loop, "stepline-shipper")

    def _loop(self) -> None:
        delay, warned = POLL_INTERVAL, False
        while True:
            final = self._stop.is_set()  # decided before the round, so the last round sees the last records
            self._written = 0
            try:
                sent = self.shipper.ship()
                if final:
                    return
                # Behind a run that logs fast: go on at once, so its backlog never waits on the poll.
                delay, warned, self._away = (0.0 if sent >= WAKE_RECORDS else POLL_INTERVAL), False, False
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
            except Exception:  # a bug here or in a transport: say so, and let close() count what is not sent
                self._broken = True
                warn(f"stepline: shipping run {self.shipper.path.name} to {self.shown_url} failed, and stopped; "
                     f"training goes on and the local logbook keeps everything (send it later with: "
                     f"{self.sync_command()}). Please report this bug:\n{traceback.format_exc()}")
                return
            self._wake.wait(delay)
            self._wake.clear()

    def written(self, count: int) -> None:
        """The run's writer wrote ``count`` more records to the logbook: a run logging fast is shipped as soon as
        a batch's worth waits, not at the next poll. Called on the writer's thread."""
        self._written += count
        if self._written >= WAKE_RECORDS and not self._away:
            self._wake.set()

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
        self._wake.set()
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
        unsent = self.shipper.unsent() if self._thread.is_alive() or self._rejected or self._broken else 0
        if unsent:
            warn(f"stepline: {unsent} records or files of run {self.shipper.path.name} are not on {self.shown_url} "
                 f"yet; they are safe in {self.shipper.path}. Send them with: {self.sync_command()}")
        return unsent == 0
