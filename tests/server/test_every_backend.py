"""A framework run pushed to every backend at once: each gets its points, read back through its own API, and
each peer says once what it cannot keep. (That a slow backend never delays the others is tested in
test_remote.py and test_push_*: each backend has a shipper of its own.)"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

import stepline
from stepline import Logbook
from tests.server.lmtracker_double import LMTrackerDouble
from tests.server.traintrack_double import TrainTrackDouble

pytestmark = [pytest.mark.peer, pytest.mark.slow]

pytest.importorskip("mlflow")


def test_a_trainer_run_to_every_backend(server, mlflow_peer, tmp_path, logdir):
    from transformers import Trainer

    from stepline.integrations.transformers import SteplineCallback
    from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

    target = tmp_path / "stepline-server"
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "user", "add", "ana", "--password-stdin",
                    "--dir", str(target)], input="pw\n", text=True, check=True, capture_output=True)
    stepline_server = server(root=target)
    lmtracker, traintrack = LMTrackerDouble(), TrainTrackDouble()
    try:
        backends = ["local", stepline_server.url, f"mlflow+{mlflow_peer.url}", f"trackio+{stepline_server.url}",
                    lmtracker.backend, traintrack.backend]
        callback = SteplineCallback(project="hf", name="tiny", dir=logdir, backend=backends)
        trainer = Trainer(model=tiny_bert(), args=tiny_args(tmp_path / "out", max_steps=6, eval_strategy="steps",
                                                            eval_steps=3),
                          train_dataset=SyntheticText(64), eval_dataset=SyntheticText(16, seed=1),
                          callbacks=[callback])
        with pytest.warns(stepline.SteplineWarning) as caught:  # each peer says once what it cannot keep
            trainer.train()
        said = [str(w.message) for w in caught if issubclass(w.category, stepline.SteplineWarning)]
        assert any("TrainTrack cannot keep 'train/learning_rate'" in m for m in said), said
        assert any("MLflow keeps no log" in m or "Trackio keeps no" in m or "LMTracker keeps no" in m for m in said)
        steps = [1, 2, 3, 4, 5, 6]
        local = Logbook(logdir).run(callback.run.id)
        assert local.series("train/loss").steps == steps and local.status == "finished"
        # the stepline server, through its ingest API and its Trackio routes (two runs of the same name)
        pushed = [r for r in Logbook(target).runs("hf") if r.name == "tiny"]
        assert len(pushed) == 2 and all(r.series("train/loss").steps == steps for r in pushed)
        # MLflow, read back with its own client
        import mlflow

        client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_peer.url)
        [found] = client.search_runs([client.get_experiment_by_name("hf").experiment_id])
        assert [m.step for m in client.get_metric_history(found.info.run_id, "train/loss")] == steps
        assert [m.step for m in client.get_metric_history(found.info.run_id, "eval/loss")] == [3, 6]
        assert found.info.status == "FINISHED"
        # LMTracker: train and eval points in runs of their own, so its schema check never refused one
        lm_runs = lmtracker.app.state.projects["hf"]
        assert [p["step"] for p in lm_runs["tiny"]["metrics"]] == steps
        assert any([p["step"] for p in run["metrics"]] == [3, 6] for run in lm_runs.values())
        # TrainTrack: train and validation losses
        db = traintrack.app.state.db
        assert sorted(r["step"] for r in db["loss"] if r["split"] == "train") == steps
        assert sorted(r["step"] for r in db["loss"] if r["split"] == "validation") == [3, 6]
        assert requests.get(f"{stepline_server.url}/api/v1/projects/hf/runs", timeout=10).ok
    finally:
        lmtracker.stop()
        traintrack.stop()
