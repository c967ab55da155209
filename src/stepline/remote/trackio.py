"""Pushing a run to a Trackio server (``trackio+http://host:port``), through its bulk log.

    transport = TrackioTransport("http://127.0.0.1:7860", write_token="...")
    Shipper(run_path, transport).ship()

Each point carries ``log_id = stepline-<run id>-<seq>``, which Trackio stores once: a batch sent again
after a lost answer, or a whole run sent again after either side restarted, doubles nothing. Trackio keeps
one config per run (the params as they stand at the first point), no logs, no files and no status. Media go
as Trackio's client sends its own (remote/trackio_media.py): images and audio staged and uploaded, the rest
inline.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import requests

from stepline import events
from stepline.errors import ConfigError
from stepline.logbook import layout
from stepline.metric_keys import SYSTEM
from stepline.params import apply_operation
from stepline.remote.client import RemoteRejected, WarnOnce, json_body, other_server_hint, reachable_response
from stepline.remote.trackio_media import FILE_TYPES, file_value, inline_value

SCHEME = "trackio+"
FORM = "trackio+http://host:port (?write_token=T, or $TRACKIO_WRITE_TOKEN)"


def parse_trackio_url(url: str) -> tuple[str, str | None]:
    """``trackio+http://host:port?write_token=T`` -> ("http://host:port", "T"); the token also from the env."""
    parts = urlsplit(url[len(SCHEME):])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"backend {url!r} must look like trackio+http://host:port")
    query = parse_qs(parts.query)
    token = (query.pop("write_token", [None])[0] or os.environ.get("STEPLINE_TRACKIO_TOKEN")
             or os.environ.get("TRACKIO_WRITE_TOKEN"))
    base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), urlencode(query, doseq=True), ""))
    return base, token


def transport_maker(url: str, token: str | None) -> Callable[[], TrackioTransport]:
    """``trackio+http://host:port?write_token=T``, checked, as a maker of one transport per run. ``token`` is
    a stepline server's and is not sent here: Trackio's write token comes from the URL or the environment."""
    base, write_token = parse_trackio_url(url)
    return lambda: TrackioTransport(base, write_token)


class TrackioTransport:
    """The shipper's transport for Trackio: the same calls as :class:`RemoteClient`, in Trackio's terms."""

    def __init__(self, url: str, write_token: str | None, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        if write_token:
            self.session.headers["X-Trackio-Write-Token"] = write_token
        self._params: dict[str, Any] = {}
        self._media_files: dict[str, Path] = {}
        self._takes_files = True
        self._once = WarnOnce(url)

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        self._name = str(meta.get("name") or run_id)
        # Trackio cannot say what it holds: everything is sent again, and log_id makes that harmless.
        return {"max_seq": {}, "files": {}}

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        logs: list[dict[str, Any]] = []
        system: list[dict[str, Any]] = []
        uploads: list[dict[str, Any]] = []
        for record in records:
            kind = record["type"]
            if kind == events.MEDIA:
                logs.extend(self._media_logs(project, run_id, record, uploads))
            elif kind == events.PARAMS:
                apply_operation(self._params, record)
            elif kind == events.METRICS:
                # Trackio's client writes NaN and infinities as "NaN", "Infinity": so does the logbook.
                values = {k: events.json_number(v) for k, v in record["values"].items()}
                machine = {k: v for k, v in values.items() if k.startswith(SYSTEM)}
                trained = {k: v for k, v in values.items() if not k.startswith(SYSTEM)}
                log_id = f"stepline-{run_id}-{record['seq']}"
                if trained:
                    logs.append(self._point(project, trained, record["step"], log_id))
                if machine:  # on Trackio's own clock axis, as its client sends the machine's figures
                    system.append({"project": project, "run": self._name, "run_id": None, "metrics": machine,
                                   "timestamp": datetime.fromtimestamp(record["time"], timezone.utc).isoformat(),
                                   "log_id": log_id + "-system"})
            else:
                self._lost(kind, "Trackio keeps no log lines")
        if uploads:  # the files first, so no point names a file the server lacks
            self._post("bulk_upload_media", {"uploads": uploads, "hf_token": None})
        if logs:
            self._post("bulk_log", {"logs": logs, "hf_token": None})
        if system:
            self._post("bulk_log_system", {"logs": system, "hf_token": None})
        return {"max_seq": {records[-1]["type"]: records[-1]["seq"]}}

    def upload(self, project: str, run_id: str, relative: str, path: Any) -> dict[str, Any]:
        self._lost("file", "Trackio keeps no files")
        return {}

    def upload_media(self, project: str, run_id: str, name: str, path: Path) -> dict[str, Any]:
        """Where a media file is: it goes up with its record (send_events), as Trackio's client sends its own."""
        self._media_files[name] = path
        return {}

    def _media_logs(self, project: str, run_id: str, record: dict[str, Any],
                    uploads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A media record as Trackio's points, one per item (its pages show one value per point); the files of
        images and audio are uploaded now and added to ``uploads``, for bulk_upload_media."""
        kind, step, logs = record["kind"], record["step"], []
        for number, item in enumerate(record["items"]):
            path = self._media_files.get(layout.media_name(item) or "")
            if kind in FILE_TYPES:
                if path is None or not path.is_file() or not self._takes_files:
                    continue
                staged = self._stage(path)
                if staged is None:
                    continue
                uploads.append({"project": project, "run": self._name, "run_id": None, "step": step,
                                "relative_path": None, "uploaded_file": staged})
                value = file_value(kind, project, self._name, step, path.name, item.get("caption"))
            else:
                inline = inline_value(kind, item, path.read_bytes() if path is not None and path.is_file() else None)
                if inline is None:
                    continue
                value = inline
            log_id = f"stepline-{run_id}-{record['seq']}" + (f"-{number}" if number else "")
            logs.append(self._point(project, {record["key"]: value}, step, log_id))
        return logs

    def _point(self, project: str, metrics: dict[str, Any], step: int, log_id: str) -> dict[str, Any]:
        """One entry of bulk_log, with the params as they stand (Trackio keeps the first config it gets)."""
        return {"project": project, "run": self._name, "run_id": None, "metrics": metrics, "step": step,
                "config": copy.deepcopy(self._params) or None, "log_id": log_id}

    def _stage(self, path: Path) -> dict[str, Any] | None:
        """Upload a file to the server's staging area (its /api/upload, as Trackio's client does): the FileData
        that bulk_upload_media takes; None (said once) from a server that stages no files."""
        with path.open("rb") as handle:
            response = reachable_response(self.session, "POST", f"{self.url}/api/upload", self.url, self.timeout,
                                          files={"files": (path.name, handle)})
        paths = json_body(response, "paths").get("paths") if response.status_code < 400 else None
        if not isinstance(paths, list) or not paths:
            self._takes_files = False
            self._once("upload", f"{self.url} takes no file uploads ({response.status_code}): images and audio stay "
                                 "in the local logbook; histograms, tables and text are sent")
            return None
        return {"path": paths[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def _lost(self, kind: str, why: str) -> None:
        self._once(kind, f"{why}; the run's {kind} records stay in the local logbook only")

    def _post(self, name: str, kwargs: dict[str, Any]) -> Any:
        response = reachable_response(self.session, "POST", f"{self.url}/api/{name}", self.url, self.timeout,
                                      json={"args": [], "kwargs": kwargs})
        body = json_body(response, "error")
        if response.status_code >= 400 or body.get("error"):
            hint = other_server_hint(response, self.session, self.url, "trackio", self.timeout)
            raise RemoteRejected(f"{self.url} refused {name}: {response.status_code} {body.get('error')}{hint}")
        return body.get("data")
