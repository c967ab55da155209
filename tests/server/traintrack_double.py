"""A protocol double of TrainTrack, which is not on PyPI (FastAPI + PostgreSQL, run with Docker).

Written from TrainTrack's server code at github.com/AngeloMolinario/TrainTrack commit
17cde88049a2e7bfa5125b3a6d714577d8845fde (`server/app/routers/*.py`, `schemas.py`, `models.py`), and checked
against that server run for real (uvicorn + Debian's PostgreSQL 15, its requirements.txt) on 2026-11-29.
The responses it reproduces, each seen on the real server:

- no auth; `GET /health` -> `{"status": "ok"}`; `GET /models/` -> a list; `POST /models/` -> the model
  `{"id", "name", "project_name"}` (ids are UUIDs);
- `POST /runs/` -> the run `{"id", "model_id", "status": "running", "started_at", "finished_at": null,
  "hyperparameters"}`; `GET /runs/runbymodels/{model_id}` -> the model's runs, and **404
  `{"detail": "Run not found"}` when it has none** (its `read_runs`), never `[]`;
- `PATCH /runs/update_status` -> `{"rows_updated": 1}`, or 0 for an unknown run;
- `/loss/batch` and `/metric/batch` need the inner `run_id` and answer the stored rows (with `timestamp`);
  `split` is `train` or `validation`, `metric_name` one of the seven, else 422 with pydantic's detail;
- `GET /loss/` and `/metric/` (`run_id`, optional `split`) -> the rows, largest step first, `[]` when none;
- every integrity error (a duplicate model, an unknown run, the same (run, step, split[, metric]) twice)
  is a bare 500 `Internal Server Error` and stores nothing of the batch; a NaN is stored and answered 500,
  and reading that split answers 500 for ever after.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from tests.server.conftest import ThreadedApp

Split = Literal["train", "validation"]
MetricName = Literal["accuracy", "f1-score", "recall", "precision", "balanced accuracy", "mse", "mae"]


class ModelIn(BaseModel):
    name: str
    project_name: str


class RunIn(BaseModel):
    model_id: str
    hyperparameters: dict = {}


class StatusIn(BaseModel):
    run_id: str
    new_status: Literal["running", "completed", "failed"]


class LossIn(BaseModel):
    run_id: str
    step: int
    split: Split
    value: float


class MetricIn(LossIn):
    metric_name: MetricName


class LossBatch(BaseModel):
    run_id: str
    losses: list[LossIn]


class MetricBatch(BaseModel):
    run_id: str
    metrics: list[MetricIn]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def build_app() -> FastAPI:
    app = FastAPI()
    db = {"models": {}, "runs": {}, "loss": [], "metric": [], "poisoned": set()}
    app.state.db = db
    bare_500 = PlainTextResponse("Internal Server Error", 500)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/models/")
    def models():
        return list(db["models"].values())

    @app.post("/models/")
    def create_model(model: ModelIn):
        if any(m["name"] == model.name and m["project_name"] == model.project_name for m in db["models"].values()):
            return bare_500
        row = {"id": str(uuid.uuid4()), **model.model_dump()}
        db["models"][row["id"]] = row
        return row

    @app.post("/runs/")
    def create_run(run: RunIn):
        if run.model_id not in db["models"]:
            return bare_500
        row = {"id": str(uuid.uuid4()), "model_id": run.model_id, "status": "running", "started_at": _now(),
               "finished_at": None, "hyperparameters": run.hyperparameters}
        db["runs"][row["id"]] = row
        return row

    @app.get("/runs/runbymodels/{model_id}")
    def runs_by_model(model_id: str):
        runs = [r for r in db["runs"].values() if r["model_id"] == model_id]
        return runs or JSONResponse({"detail": "Run not found"}, 404)

    @app.patch("/runs/update_status")
    def update_status(body: StatusIn):
        if body.run_id not in db["runs"]:
            return {"rows_updated": 0}
        db["runs"][body.run_id]["status"] = body.new_status
        if body.new_status == "completed":
            db["runs"][body.run_id]["finished_at"] = _now()
        return {"rows_updated": 1}

    def store(kind, rows, key):
        keys = {key(r) for r in db[kind]}
        fresh = [{**r.model_dump(), "timestamp": _now()} for r in rows]
        clash = any(key(r) in keys for r in fresh) or len({key(r) for r in fresh}) != len(fresh)
        if clash or any(r["run_id"] not in db["runs"] for r in fresh):
            return bare_500  # the whole batch is one transaction: nothing of it is stored
        db[kind].extend(fresh)
        if any(math.isnan(r["value"]) for r in fresh):
            db["poisoned"].update((kind, r["run_id"], r["split"]) for r in fresh if math.isnan(r["value"]))
            return bare_500
        return fresh

    @app.post("/loss/batch")
    def loss_batch(batch: LossBatch):
        return store("loss", batch.losses, lambda r: (r["run_id"], r["step"], r["split"]))

    @app.post("/metric/batch")
    def metric_batch(batch: MetricBatch):
        return store("metric", batch.metrics, lambda r: (r["run_id"], r["step"], r["split"], r["metric_name"]))

    def read(kind, run_id, split):
        if any(p[0] == kind and p[1] == run_id and (split is None or p[2] == split) for p in db["poisoned"]):
            return bare_500
        rows = [r for r in db[kind] if r["run_id"] == run_id and (split is None or r["split"] == split)]
        return sorted(rows, key=lambda r: -r["step"])

    @app.get("/loss/")
    def losses(run_id: str, split: Split | None = None):
        return read("loss", run_id, split)

    @app.get("/metric/")
    def metrics(run_id: str, split: Split | None = None):
        return read("metric", run_id, split)

    return app


class TrainTrackDouble(ThreadedApp):
    def __init__(self, app: FastAPI | None = None, port: int | None = None) -> None:
        super().__init__(app or build_app(), port)  # the same app again: its database survived the outage

    @property
    def backend(self) -> str:
        return f"traintrack+{self.url}"
