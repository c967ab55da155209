"""A protocol double of TrainTrack, which is not on PyPI (FastAPI + PostgreSQL, run with Docker).

It follows ../shared/PEERS.md and the seed exactly: no auth; models (id, name, project_name), runs created
`running` with their hyperparameters; `/loss/batch` and `/metric/batch` need the inner `run_id`, `split` is
`train` or `validation`, `metric_name` one of the seven; a bad body answers 422 with pydantic's detail; an
integrity error (a duplicate model, an unknown run, the same (run, step, split[, metric]) twice) is a bare
500; a NaN is stored and answered 500, and that split then answers 500 for ever.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Literal

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
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
        row = {"id": str(uuid.uuid4()), "model_id": run.model_id, "status": "running", "started_at": time.time(),
               "finished_at": None, "hyperparameters": run.hyperparameters}
        db["runs"][row["id"]] = row
        return row

    @app.get("/runs/runbymodels/{model_id}")
    def runs_by_model(model_id: str):
        return [r for r in db["runs"].values() if r["model_id"] == model_id]

    @app.patch("/runs/update_status")
    def update_status(body: StatusIn):
        if body.run_id not in db["runs"]:
            return {"rows_updated": 0}
        db["runs"][body.run_id]["status"] = body.new_status
        return {"rows_updated": 1}

    def store(kind, rows, key):
        keys = {key(r) for r in db[kind]}
        fresh = [r.model_dump() for r in rows]
        clash = any(key(r) in keys for r in fresh) or len({key(r) for r in fresh}) != len(fresh)
        if clash or any(r["run_id"] not in db["runs"] for r in fresh):
            return bare_500  # the whole batch is one transaction: nothing of it is stored
        db[kind].extend(fresh)
        if any(math.isnan(r["value"]) for r in fresh):
            db["poisoned"].update((kind, r["run_id"], r["split"]) for r in fresh if math.isnan(r["value"]))
            return bare_500
        return {"inserted": len(fresh)}

    @app.post("/loss/batch")
    def loss_batch(batch: LossBatch):
        return store("loss", batch.losses, lambda r: (r["run_id"], r["step"], r["split"]))

    @app.post("/metric/batch")
    def metric_batch(batch: MetricBatch):
        return store("metric", batch.metrics, lambda r: (r["run_id"], r["step"], r["split"], r["metric_name"]))

    def read(kind, run_id, split):
        if any(p[0] == kind and p[1] == run_id and (split is None or p[2] == split) for p in db["poisoned"]):
            return bare_500
        return [r for r in db[kind] if r["run_id"] == run_id and (split is None or r["split"] == split)]

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
