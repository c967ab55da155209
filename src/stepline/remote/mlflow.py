"""Pushing a run to an MLflow tracking server (``mlflow+http://host:port``) through its REST API.

    transport = MLflowTransport("http://127.0.0.1:5000")

The project is the experiment, the run is found again by its tag ``stepline.run_id``. Metrics go through
``runs/log-batch`` within MLflow's limits (1,000 items a call), each batch with the tag
``stepline.seq.<file>`` holding the last ``seq`` it carries, in the same call: after an outage or a
restart the shipper reads those tags and sends only what MLflow lacks, so nothing is doubled. Params are
flattened (``model.layers``); MLflow keeps a param's first value, so a later change is kept as a tag
``stepline.param.<key>`` with a warning, and a value over MLflow's length limit goes as an artifact
``params/<key>.json`` (never truncated). Files go as artifacts; images and tables as MLflow's own
``log_image(key=, step=)`` and ``log_table`` lay them out (``images/<key>+step+<n>+timestamp+<ms>+<id>.png``
with its WebP thumbnail, ``tables/<key>/step_<n>.json``), with the tags its UI reads; other media and log
lines stay local; the run ends FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from stepline import events
from stepline.logbook import layout
from stepline.params import apply_operation, flatten
from stepline.remote.client import (
    RemoteRejected,
    WarnOnce,
    json_body,
    other_server_hint,
    peer_base_url,
    reachable_response,
)
from stepline.urls import is_loopback

SCHEME = "mlflow+"
FORM = "mlflow+http://host:port"
MAX_ITEMS = 1000
MAX_PARAMS = 100
MAX_PARAM_VALUE = 6000
MAX_KEY = 250
LOGGED_IMAGES, LOGGED_ARTIFACTS = "mlflow.loggedImages", "mlflow.loggedArtifacts"  # MLflow's UI reads these
COMPRESSED_SIZE = 256  # MLflow's image grid
_STATUS = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def transport_maker(url: str, token: str | None) -> Callable[[], MLflowTransport]:
    """``mlflow+http://host:port``, checked, as a maker of one transport per run (MLflow takes no token)."""
    base = peer_base_url(url, SCHEME)
    return lambda: MLflowTransport(base)


class MLflowTransport:
    """The shipper's transport for MLflow: the same calls as :class:`RemoteClient`, in MLflow's terms."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        self._params: dict[str, Any] = {}
        self._sent_params: dict[str, str] = {}
        self._artifact_uri = ""  # where MLflow keeps this run's files: its UI lists them from there
        self._media_files: dict[str, Path] = {}  # media file name -> its local path, until its record goes
        self._logged_artifacts: list[dict[str, str]] = []  # the tables MLflow's UI lists (its tag, kept whole)
        self._once = WarnOnce(url)

    # -- the shipper's calls ---------------------------------------------------------------------

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        if self._run_id is None:
            self._experiment_id = self._experiment(project)
            found = self._call("POST", "runs/search", {"experiment_ids": [self._experiment_id],
                                                       "filter": f"tags.`stepline.run_id` = '{run_id}'"})
            runs = found.get("runs") or []
            if runs:
                self._run_id = runs[0]["info"]["run_id"]
                self._artifact_uri = runs[0]["info"].get("artifact_uri", "")
                data = runs[0].get("data") or {}
                self._sent_params = {p["key"]: p["value"] for p in data.get("params") or []}
                tags = {t["key"]: t["value"] for t in data.get("tags") or []}
            else:
                tags = {}
                created = self._call("POST", "runs/create", {
                    "experiment_id": self._experiment_id, "run_name": str(meta.get("name") or run_id),
                    "start_time": int((meta.get("started_at") or time.time()) * 1000),
                    "tags": [{"key": "stepline.run_id", "value": run_id},
                             *({"key": f"stepline.tag.{t}", "value": "true"} for t in meta.get("tags") or [])]})
                self._run_id = created["run"]["info"]["run_id"]
                self._artifact_uri = created["run"]["info"].get("artifact_uri", "")
            self._logged_artifacts = json.loads(tags.get(LOGGED_ARTIFACTS, "[]"))
            max_seq = {kind: int(tags.get(f"stepline.seq.{kind}", 0))
                       for kind in (events.METRICS, events.PARAMS, events.MEDIA)}
            return {"max_seq": max_seq, "files": {}}
        status = _STATUS.get(str(meta.get("status")), "RUNNING")
        update: dict[str, Any] = {"run_id": self._run_id, "status": status}
        if status != "RUNNING" and meta.get("ended_at"):
            update["end_time"] = int(meta["ended_at"] * 1000)
        self._call("POST", "runs/update", update)
        return {"max_seq": {}, "files": {}}

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        kind = records[-1]["type"]
        if kind == events.METRICS:
            # Each call carries, in the same call, the seq of the last record it holds whole: a call that
            # fails stores nothing, one that succeeds moves the mark, so no point is ever stored twice.
            items: list[dict[str, Any]] = []
            done = 0  # the seq of the last record whose points are all in ``items``
            for record in records:
                self._warn_infinities(record)
                stamp = int(record["time"] * 1000)
                points = [{"key": key, "value": _number(value), "timestamp": stamp, "step": record["step"]}
                          for key, value in record["values"].items()]
                if items and len(items) + len(points) > MAX_ITEMS - 1:
                    self._log_batch(metrics=items, tags=[_seq_tag(kind, done)])
                    items = []
                while len(points) > MAX_ITEMS - 1:  # one record with more keys than a call takes
                    self._log_batch(metrics=points[: MAX_ITEMS - 1])
                    points = points[MAX_ITEMS - 1:]
                items.extend(points)
                done = record["seq"]
            self._log_batch(metrics=items, tags=[_seq_tag(kind, done)])
        elif kind == events.PARAMS:
            for record in records:
                apply_operation(self._params, record)
            self._send_params(records[-1]["seq"])
        elif kind == events.MEDIA:
            tags = [tag for record in records for tag in self._send_media(run_id, record)]
            self._log_batch(tags=[*{t["key"]: t for t in tags}.values(), _seq_tag(kind, records[-1]["seq"])])
        else:
            self._once(kind, f"MLflow keeps no {kind} records; they stay in the local logbook")
        return {"max_seq": {kind: records[-1]["seq"]}}

    def upload(self, project: str, run_id: str, relative: str, path: Path) -> dict[str, Any]:
        self._artifact(relative, path.read_bytes())
        return {}

    def upload_media(self, project: str, run_id: str, name: str, path: Path) -> dict[str, Any]:
        """Where a media file is: it goes up with its record, named as MLflow names its own."""
        self._media_files[name] = path
        return {}

    def _send_media(self, run_id: str, record: dict[str, Any]) -> list[dict[str, str]]:
        """Images and tables laid out as MLflow's log_image(key=, step=) and log_table lay them out, so its UI
        shows them; the tags that tell its UI so. Artifact names derive from the record, so a record sent again
        after a lost answer replaces its artifacts rather than adding more."""
        kind, key, step = record["kind"], _image_key(record["key"]), record["step"]
        if kind == "image":
            for number, item in enumerate(record["items"]):
                data = self._media_bytes(item)
                if data is None:
                    continue
                identity = uuid.uuid5(uuid.NAMESPACE_URL, f"stepline:{run_id}:{record['seq']}:{number}")
                name = f"images/{key}+step+{step}+timestamp+{int(record['time'] * 1000)}+{identity}"
                self._artifact(f"{name}.png", data)
                small = _compressed(data)
                if small is not None:
                    self._artifact(f"{name}+compressed.webp", small)
                else:
                    self._once("webp", "MLflow's image grid wants a small WebP beside each image; without Pillow "
                                       "(pip install pillow) only the PNG is sent")
            return [{"key": LOGGED_IMAGES, "value": "true"}]
        if kind == "table":
            for item in record["items"]:
                data = self._media_bytes(item)
                if data is None:
                    continue
                table = json.loads(data)
                path = f"tables/{key.replace('~', '/')}/step_{step}.json"
                self._artifact(path, json.dumps({"columns": table["columns"], "data": table["rows"]}).encode())
                entry = {"path": path, "type": "table"}
                if entry not in self._logged_artifacts:
                    self._logged_artifacts.append(entry)
            return [{"key": LOGGED_ARTIFACTS, "value": json.dumps(self._logged_artifacts)}]
        self._once(f"media:{kind}", f"MLflow shows images and tables; {kind} media stay in the local logbook")
        return []

    def _media_bytes(self, item: dict[str, Any]) -> bytes | None:
        path = self._media_files.get(layout.media_name(item) or "")
        return path.read_bytes() if path is not None and path.is_file() else None

    def _warn_infinities(self, record: dict[str, Any]) -> None:
        for key, value in record["values"].items():
            if isinstance(value, float) and math.isinf(value):
                self._once("inf", f"MLflow stores an infinity as {math.copysign(sys.float_info.max, value):.4g} (the "
                                  f"largest double), as {key!r} at step {record['step']} will read there; the local "
                                  "logbook keeps the infinity, and NaN stays NaN in both")

    # -- MLflow ------------------------------------------------------------------------------------

    def _experiment(self, name: str) -> str:
        response = reachable_response(self.session, "GET", f"{self.url}/api/2.0/mlflow/experiments/get-by-name",
                                      self.url, self.timeout, params={"experiment_name": name})
        if response.status_code == 200:
            return str(response.json()["experiment"]["experiment_id"])
        return str(self._call("POST", "experiments/create", {"name": name})["experiment_id"])

    def _send_params(self, seq: int) -> None:
        fresh: list[dict[str, str]] = []
        for key, value in flatten(self._params).items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            if len(text) > MAX_PARAM_VALUE or len(key) > MAX_KEY:
                self._once(f"long:{key}", f"param {key!r} is over MLflow's length limit: it goes as the "
                                          f"artifact params/{_safe(key)}.json, whole")
                self._artifact(f"params/{_safe(key)}.json", json.dumps(value, default=str).encode())
                text = f"(see artifact params/{_safe(key)}.json)"
                key = key[:MAX_KEY]
            old = self._sent_params.get(key)
            if old is None:
                fresh.append({"key": key, "value": text})
                self._sent_params[key] = text
            elif old != text:
                self._once(f"changed:{key}", f"MLflow keeps a param's first value: {key!r} changed, and the new "
                                             f"value goes as the tag stepline.param.{key}")
                self._log_batch(tags=[{"key": f"stepline.param.{key}"[:MAX_KEY], "value": text}])
                self._sent_params[key] = text
        for start in range(0, len(fresh), MAX_PARAMS):
            part = fresh[start:start + MAX_PARAMS]
            last = start + MAX_PARAMS >= len(fresh)
            self._log_batch(params=part, tags=[_seq_tag(events.PARAMS, seq)] if last else [])
        if not fresh:
            self._log_batch(tags=[_seq_tag(events.PARAMS, seq)])

    def _log_batch(self, metrics: list[Any] | None = None, params: list[Any] | None = None,
                   tags: list[Any] | None = None) -> None:
        if metrics or params or tags:
            self._call("POST", "runs/log-batch", {"run_id": self._run_id, "metrics": metrics or [],
                                                  "params": params or [], "tags": tags or []})

    def _artifact(self, relative: str, data: bytes) -> None:
        """Put a file where the run's ``artifact_uri`` says, which is where MLflow's UI and client look."""
        where = urlsplit(self._artifact_uri)
        server_is_here = is_loopback(urlsplit(self.url).hostname or "")
        if where.scheme == "mlflow-artifacts":  # the tracking server proxies its artifact store
            self._proxied_artifact(f"{where.path.strip('/')}/{relative}", relative, data)
        elif where.scheme in ("", "file") and where.path.startswith("/") and server_is_here:
            # A folder of the server's machine, which is this one: write it there, as MLflow's own client does.
            target = Path(where.path) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        else:
            self._once("artifact_uri", f"MLflow keeps this run's files at {self._artifact_uri!r}, which stepline "
                                       "cannot write to over MLflow's REST API; serve them through the tracking "
                                       "server (mlflow server --serve-artifacts, without a --default-artifact-root "
                                       "of another kind). Files stay in the local logbook")

    def _proxied_artifact(self, path: str, relative: str, data: bytes) -> None:
        url = f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{quote(path)}"
        response = reachable_response(self.session, "PUT", url, self.url, self.timeout, data=data)
        if response.status_code >= 400:
            raise RemoteRejected(f"{self.url} refused the artifact {relative}: {response.status_code} "
                                 f"{json_body(response, 'message').get('message')}")

    def _call(self, method: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
        response = reachable_response(self.session, method, f"{self.url}/api/2.0/mlflow/{route}", self.url,
                                      self.timeout, json=body)
        answer = json_body(response, "message")
        if response.status_code >= 400:
            hint = other_server_hint(response, self.session, self.url, "mlflow", self.timeout)
            raise RemoteRejected(f"{self.url} refused {route}: {response.status_code} {answer.get('message')}{hint}")
        return answer


def _image_key(key: str) -> str:
    """A key as MLflow's log_image takes it (letters, digits, ``_-. /``), its ``/`` as ``~``, as MLflow writes it."""
    return re.sub(r"[^a-zA-Z0-9_\-. ~]", "_", key.replace("/", "~"))


def _compressed(png: bytes) -> bytes | None:
    """The WebP MLflow shows in its image grid: the image within a 256-pixel square; None without Pillow."""
    try:
        from PIL import Image
    except ImportError:
        return None
    with Image.open(io.BytesIO(png)) as image:
        width, height = image.size
        scale = COMPRESSED_SIZE / max(width, height)
        small = image.resize((max(1, int(width * scale)), max(1, int(height * scale))))
        buffer = io.BytesIO()
        small.save(buffer, format="webp")
    return buffer.getvalue()


def _seq_tag(kind: str, seq: int) -> dict[str, str]:
    return {"key": f"stepline.seq.{kind}", "value": str(seq)}


def _number(value: Any) -> Any:
    """MLflow's JSON takes NaN and infinities as the strings "NaN", "Infinity", "-Infinity"; no booleans."""
    return int(value) if isinstance(value, bool) else events.json_number(value)


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)
