"""Pushing runs to TrainTrack, through a protocol double that enforces its documented rules."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

import stepline
from stepline.remote.traintrack import destination
from tests.conftest import wait_until
from tests.server.traintrack_double import TrainTrackDouble


@pytest.fixture
def double():
    instance = TrainTrackDouble()
    yield instance
    instance.stop()


def test_key_mapping():
    assert destination("train/loss") == ("loss", "train", None)
    assert destination("eval/loss") == ("loss", "validation", None)
    assert destination("val_loss") == ("loss", "validation", None)
    assert destination("eval/acc") == ("metric", "validation", "accuracy")
    assert destination("train/f1") == ("metric", "train", "f1-score")
    assert destination("eval/balanced_accuracy") == ("metric", "validation", "balanced accuracy")
    assert destination("train/learning_rate") is None and destination("test/loss") is None


def test_losses_metrics_hyperparameters_and_status_land(double, logdir):
    with pytest.warns(stepline.SteplineWarning) as caught:
        run = stepline.init(project="vision", name="resnet", dir=logdir, backend=double.backend,
                            config={"lr": 0.1, "batch": 32})
        for step in range(1, 11):
            run.log({"train/loss": 1 / step, "train/lr": 0.1, "train/acc": step / 10}, step=step)
            if step % 5 == 0:
                run.log({"eval/loss": 2 / step, "eval/mse": 0.5}, step=step)
        run.log({"eval/loss": 9.9}, step=10)  # the same step and split again: TrainTrack would answer 500
        run.log({"train/loss": math.nan}, step=11)  # a NaN would poison the split
        assert run.finish(timeout=30)
    messages = " ".join(str(w.message) for w in caught)
    assert "'train/lr'" in messages and "NaN" in messages and "one 'eval/loss' per step" in messages
    db = double.app.state.db
    [model] = db["models"].values()
    assert model["name"] == model["project_name"] == "vision"
    [tt_run] = db["runs"].values()
    assert tt_run["status"] == "completed" and tt_run["hyperparameters"] == {"lr": 0.1, "batch": 32,
                                                                              "stepline_run_id": run.id}
    train = [(r["step"], r["value"]) for r in db["loss"] if r["split"] == "train"]
    assert train == [(s, 1 / s) for s in range(1, 11)]
    assert [(r["step"], r["value"]) for r in db["loss"] if r["split"] == "validation"] == [(5, 0.4), (10, 0.2)]
    assert sorted((r["metric_name"], r["split"], r["step"]) for r in db["metric"]) == sorted(
        [("accuracy", "train", s) for s in range(1, 11)] + [("mse", "validation", 5), ("mse", "validation", 10)])


def test_params_written_while_the_shipper_reads_still_create_the_run_with_them(double, logdir, monkeypatch):
    """The writer may append a params record and the first metrics between two of a ship round's looks at how
    far the files go."""
    from stepline.remote.shipper import FileCursor, Shipper
    from stepline.remote.traintrack import TrainTrackTransport
    from stepline.sinks.logbook import LogbookSink

    run = stepline.init(project="vision", dir=logdir)
    run.finish()
    sink = LogbookSink(run.path, {})
    shipper = Shipper(run.path, TrainTrackTransport(double.url))
    first_read = FileCursor.readable_end

    def read_then_the_writer_runs(cursor):
        records = first_read(cursor)
        monkeypatch.setattr(FileCursor, "readable_end", first_read)
        sink.write([{"type": "params", "seq": 1, "time": 1.0, "op": "set", "data": {"lr": 0.1}},
                    {"type": "metrics", "seq": 1, "time": 1.0, "step": 1, "values": {"train/loss": 0.5}}])
        sink.flush()
        return records

    monkeypatch.setattr(FileCursor, "readable_end", read_then_the_writer_runs)
    shipper.ship()
    shipper.ship()
    [tt_run] = double.app.state.db["runs"].values()
    assert tt_run["hyperparameters"] == {"lr": 0.1, "stepline_run_id": run.id}
    assert [r["step"] for r in double.app.state.db["loss"]] == [1]


def test_the_machine_s_figures_are_left_out_with_one_warning(double, logdir):
    with pytest.warns(stepline.SteplineWarning, match="machine figures") as said:
        run = stepline.init(project="vision", dir=logdir, backend=double.backend, system_metrics=True,
                            system_interval=0.1)
        for step in range(1, 6):
            run.log({"train/loss": 1 / step}, step=step)
        view = stepline.Logbook(logdir).run(run.id)
        wait_until(lambda: run.flush() and len([r for r in view.metrics() if "system/cpu.percent" in r]) >= 2, 60,
                   "two samples of the machine")
        assert run.finish(timeout=30)
    assert len([w for w in said if "system" in str(w.message)]) == 1  # one for all of them, none per key
    assert [r["step"] for r in double.app.state.db["loss"]] == [1, 2, 3, 4, 5]


def test_a_failed_run_is_failed_there(double, logdir):
    run = stepline.init(project="vision", dir=logdir, backend=double.backend)
    run.log({"train/loss": 1.0}, step=1)
    run.fail("diverged")
    [tt_run] = double.app.state.db["runs"].values()
    assert tt_run["status"] == "failed"


def test_sync_again_sends_nothing_twice(double, logdir):
    offline = stepline.init(project="vision", name="later", dir=logdir)
    for step in range(1, 6):
        offline.log({"train/loss": 1 / step}, step=step)
    offline.finish()
    for _ in range(2):  # the second sync finds the run and its points there: a repeat would be a bare 500
        result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", "later", "--dir", str(logdir),
                                 "--remote", double.backend], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert [r["step"] for r in double.app.state.db["loss"]] == [1, 2, 3, 4, 5]
    assert len(double.app.state.db["runs"]) == 1


@pytest.mark.slow
def test_traintrack_away_mid_run_gets_each_point_once_when_back(double, logdir):
    import time

    run = stepline.init(project="vision", name="outage", dir=logdir, backend=double.backend)
    for step in range(1, 201):
        run.log({"train/loss": 1 / step}, step=step)
        if step == 80:
            run.flush()
            wait_until(lambda: double.app.state.db["loss"], 60, "points on TrainTrack")  # some points reach it ...
            double.stop()  # ... then it goes away
        if step == 150:
            time.sleep(1.0)
            double.__init__(double.app, double.port)  # and comes back, its database intact
        time.sleep(0.005)
    assert run.finish(timeout=60)
    assert sorted(r["step"] for r in double.app.state.db["loss"]) == list(range(1, 201))


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["lightning", "keras"])
def test_lightning_and_keras_runs_reach_the_peers(double, logdir, framework):
    from tests.server.lmtracker_double import LMTrackerDouble

    lmtracker = LMTrackerDouble()
    try:
        backend = ["local", double.backend, lmtracker.backend]
        with pytest.warns(stepline.SteplineWarning):
            if framework == "lightning":
                import lightning.pytorch as pl

                from stepline.integrations.lightning import SteplineLogger
                from tests.integrations.lightning_models import loader, module_class

                logger = SteplineLogger(project="fw", dir=str(logdir), backend=backend)
                pl.Trainer(max_epochs=2, accelerator="cpu", logger=logger, log_every_n_steps=1,
                           enable_progress_bar=False, enable_model_summary=False).fit(
                    module_class()(), loader(), loader(16, seed=1))
            else:
                import keras
                import numpy as np

                from stepline.integrations.keras import SteplineCallback

                x = np.ones((64, 4), "float32")
                model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
                model.compile(optimizer="sgd", loss="mse")
                model.fit(x, x.sum(axis=1), batch_size=8, epochs=2, validation_split=0.25, verbose=0,
                          callbacks=[SteplineCallback(project="fw", dir=logdir, backend=backend)])
        [local] = stepline.Logbook(logdir).runs("fw")
        train = local.series("train/loss")
        db = double.app.state.db
        assert sorted(r["step"] for r in db["loss"] if r["split"] == "train") == sorted(train.steps)
        assert sorted(r["step"] for r in db["loss"] if r["split"] == "validation") == local.series("eval/loss").steps
        lm_points = [p for run in lmtracker.app.state.projects["fw"].values() for p in run["metrics"]
                     if "train/loss" in p]
        assert [p["step"] for p in lm_points] == train.steps
    finally:
        lmtracker.stop()
