"""Pushing a run to TrainTrack (``traintrack+http://host:port``): losses and its seven metrics.

    transport = TrainTrackTransport("http://127.0.0.1:8000")

A model per project (named like it), a run per stepline run with the params as its hyperparameters (and
``stepline_run_id``, by which it is found again). Keys ending in ``loss`` go to ``/loss/batch``; keys whose
last part names one of TrainTrack's metrics (accuracy, f1-score, recall, precision, balanced accuracy, mse,
mae; ``acc``, ``f1``, ``balanced_accuracy`` too) to ``/metric/batch``; ``eval/`` and ``val`` keys are the
``validation`` split, the rest ``train``. Other keys, test keys, non-finite values and a second value for
the same (step, split, metric) are skipped with one warning each (the machine's figures, ``system/``, with
one for all): TrainTrack answers a bare 500 to a
duplicate and cannot read a split back once it holds a NaN. Before sending, the transport reads what the run
holds, so nothing is sent twice. Params after the run's creation, log lines and files stay local.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import requests

from stepline import events
from stepline.metric_keys import SYSTEM
from stepline.params import apply_operation
from stepline.remote.client import (
    RemoteRejected,
    RemoteUnavailable,
    WarnOnce,
    json_body,
    other_server_hint,
    peer_base_url,
    reachable_response,
)

SCHEME = "traintrack+"
FORM = "traintrack+http://host:port"
METRIC_NAMES = {"accuracy": "accuracy", "acc": "accuracy", "f1-score": "f1-score", "f1": "f1-score",
                "f1_score": "f1-score", "recall": "recall", "precision": "precision",
                "balanced accuracy": "balanced accuracy", "balanced_accuracy": "balanced accuracy",
                "mse": "mse", "mae": "mae"}
_STATUS = {"finished": "completed", "failed": "failed", "killed": "failed"}


def transport_maker(url: str, token: str | None) -> Callable[[], TrainTrackTransport]:
    """``traintrack+http://host:port``, checked, as a maker of one transport per run (TrainTrack has no auth)."""
    base = peer_base_url(url, SCHEME)
    return lambda: TrainTrackTransport(base)


def destination(key: str) -> tuple[str, str, str | None] | None:
    """``(endpoint, split, metric_name)`` for a stepline key, or None when TrainTrack cannot keep it."""
    parts = key.split("/")
    head, last = (parts[0] if len(parts) > 1 else ""), parts[-1].lower()
    if head == "test":
        return None
    split = "validation" if head in ("eval", "val", "validation") or last.startswith("val_") else "train"
    last = last[4:] if last.startswith("val_") else last
    if last.endswith("loss"):
        return "loss", split, None
    metric = METRIC_NAMES.get(last)
    return ("metric", split, metric) if metric else None


class TrainTrackTransport:
    """The shipper's transport for TrainTrack: the same calls as :class:`RemoteClient`, in TrainTrack's terms."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self._run: str | None = None
        self._stepline_id = ""
        self._project = ""
        self._params: dict[str, Any] = {}
        self._stored: set[tuple[Any, ...]] = set()
        self._once = WarnOnce(url, "; it stays in the local logbook")
        self._status: str | None = None
        self._resync = False

    def open_run(self, project: str, run_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        self._project, self._stepline_id = project, run_id
        status = _STATUS.get(str(meta.get("status")))
        if status and self._run and status != self._status:
            self._call("PATCH", "/runs/update_status", {"run_id": self._run, "new_status": status})
            self._status = status
        return {"max_seq": {}, "files": {}}

    def send_events(self, project: str, run_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        kind = records[-1]["type"]
        if kind == events.PARAMS:
            if self._run is not None:
                self._once("params", "TrainTrack takes hyperparameters when a run is created only")
            for record in records:
                apply_operation(self._params, record)
        elif kind == events.METRICS:
            self._send_metrics(records)
        else:
            self._once(kind, f"TrainTrack keeps no {kind} records")
        return {"max_seq": {kind: records[-1]["seq"]}}

    def upload(self, project: str, run_id: str, relative: str, path: Any) -> dict[str, Any]:
        self._once("file", "TrainTrack keeps no files")
        return {}

    def _send_metrics(self, records: list[dict[str, Any]]) -> None:
        run = self._ensure_run()
        if self._resync:  # an earlier batch may have landed although its answer was lost
            self._load_stored(run)
            self._resync = False
        batches: dict[str, list[dict[str, Any]]] = {"loss": [], "metric": []}
        pending: set[tuple[Any, ...]] = set()
        for record in records:
            for key, value in record["values"].items():
                if key.startswith(SYSTEM):
                    self._once("system", "TrainTrack keeps no machine figures (system/...)")
                    continue
                target = destination(key)
                if target is None:
                    self._once(f"key:{key}", f"TrainTrack cannot keep {key!r} (losses and its seven metrics only)")
                    continue
                endpoint, split, metric = target
                if not math.isfinite(float(value)):
                    self._once(f"nan:{key}", f"TrainTrack cannot keep the NaN or infinity of {key!r}")
                    continue
                identity = (endpoint, record["step"], split, metric)
                if identity in self._stored:
                    continue  # TrainTrack holds it already
                if identity in pending:
                    self._once(f"dup:{key}", f"TrainTrack keeps one {key!r} per step and split: a repeat is skipped")
                    continue
                pending.add(identity)
                point = {"run_id": run, "step": record["step"], "split": split, "value": float(value)}
                if metric:
                    point["metric_name"] = metric
                batches[endpoint].append(point)
        try:
            for endpoint, points in batches.items():
                if points:
                    field = "losses" if endpoint == "loss" else "metrics"
                    self._call("POST", f"/{endpoint}/batch", {"run_id": run, field: points})
        except RemoteUnavailable:
            self._resync = True
            raise
        self._stored |= pending

    def _ensure_run(self) -> str:
        if self._run is not None:
            return self._run
        models = self._call("GET", "/models/", None)
        model = next((m for m in models if m.get("name") == self._project
                      and m.get("project_name") == self._project), None)
        if model is None:
            model = self._call("POST", "/models/", {"name": self._project, "project_name": self._project})
        # TrainTrack answers 404 "Run not found" for a model with no run yet (its read_runs), not [].
        runs = self._call("GET", f"/runs/runbymodels/{model['id']}", None, none_on_404=True) or []
        mine = next((r for r in runs if (r.get("hyperparameters") or {}).get("stepline_run_id")
                     == self._stepline_id), None)
        if mine is None:
            mine = self._call("POST", "/runs/", {"model_id": model["id"], "hyperparameters": {
                **self._params, "stepline_run_id": self._stepline_id}})
        else:  # sent before: learn what it holds, so nothing goes twice (a repeat is a bare 500 there)
            self._load_stored(str(mine["id"]))
        self._run = str(mine["id"])
        return self._run

    def _load_stored(self, run: str) -> None:
        for endpoint in ("loss", "metric"):
            for point in self._call("GET", f"/{endpoint}/", None, params={"run_id": run}):
                self._stored.add((endpoint, point["step"], point["split"], point.get("metric_name")))

    def _call(self, method: str, route: str, body: Any, params: dict[str, Any] | None = None,
              none_on_404: bool = False) -> Any:
        response = reachable_response(self.session, method, f"{self.url}{route}", self.url, self.timeout,
                                      json=body, params=params)
        if none_on_404 and response.status_code == 404:
            return None
        if response.status_code >= 400:
            hint = other_server_hint(response, self.session, self.url, "traintrack", self.timeout)
            raise RemoteRejected(f"{self.url} refused {method} {route}: {response.status_code} "
                                 f"{json_body(response, 'detail').get('detail')}{hint}")
        try:
            return response.json()
        except ValueError:
            raise RemoteUnavailable(f"{self.url} answered {route} with something that is not JSON") from None
