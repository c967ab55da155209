"""`stepline sync --all` of several offline runs to every backend kind: each run lands as a run of its own.

A transport keeps per-run state (the peer's run id, the params sent), so one transport reused for every run
merged them into the first: with a real MLflow server, run `a` held both runs' points.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

import stepline
from stepline import Logbook
from tests.server.lmtracker_double import LMTrackerDouble
from tests.server.traintrack_double import TrainTrackDouble

RUNS = {"a": 1.0, "b": 100.0}  # run name -> scale of its losses, so a mixed-up point shows
STEPS = [1, 2, 3, 4, 5]


def offline_runs(logdir) -> None:
    for name, scale in RUNS.items():
        run = stepline.init(project="offline", name=name, dir=logdir, config={"scale": scale})
        for step in STEPS:
            run.log({"train/loss": scale * step}, step=step)
        run.finish()


def sync_all(logdir, remote: str) -> None:
    for _ in range(2):  # a second sync finds everything there and adds nothing
        result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", "--all", "--dir", str(logdir),
                                 "--remote", remote], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "2 of 2 runs synced" in result.stdout


def expected(name: str) -> list[float]:
    return [RUNS[name] * step for step in STEPS]


def test_to_a_stepline_server(server, tmp_path, logdir):
    offline_runs(logdir)
    process = server(root=tmp_path / "server")
    sync_all(logdir, process.url)
    runs = {r.name: r for r in Logbook(tmp_path / "server").runs("offline")}
    assert sorted(runs) == ["a", "b"]
    for name, view in runs.items():
        assert view.series("train/loss").values == expected(name) and view.params() == {"scale": RUNS[name]}


@pytest.mark.peer
def test_to_mlflow(mlflow_peer, logdir):
    offline_runs(logdir)
    sync_all(logdir, f"mlflow+{mlflow_peer.url}")
    client = mlflow_peer.client()
    found = client.search_runs([client.get_experiment_by_name("offline").experiment_id])
    assert sorted(r.info.run_name for r in found) == ["a", "b"]
    for run in found:
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.value for m in history] == expected(run.info.run_name)
        assert run.data.params == {"scale": str(RUNS[run.info.run_name])}


@pytest.mark.peer
def test_to_trackio(tmp_path, logdir):
    pytest.importorskip("trackio")
    from tests.server.test_push_trackio import TOKEN, TrackioServer

    offline_runs(logdir)
    peer = TrackioServer(tmp_path / "trackio")
    try:
        sync_all(logdir, f"trackio+{peer.url}?write_token={TOKEN}")
        assert sorted(r["name"] for r in peer.call("get_runs_for_project", project="offline")) == ["a", "b"]
        for name in RUNS:
            points = peer.values("offline", name, "train/loss", expected=len(STEPS))
            assert [p["value"] for p in points] == expected(name)
    finally:
        peer.stop()


def test_to_lmtracker(logdir):
    offline_runs(logdir)
    peer = LMTrackerDouble()
    try:
        sync_all(logdir, peer.backend)
        runs = peer.app.state.projects["offline"]
        assert sorted(runs) == ["a", "b"]
        for name, run in runs.items():
            assert [p["train/loss"] for p in run["metrics"]] == expected(name)
    finally:
        peer.stop()


def test_to_traintrack(logdir):
    offline_runs(logdir)
    peer = TrainTrackDouble()
    try:
        sync_all(logdir, peer.backend)
        models = requests.get(f"{peer.url}/models/", timeout=10).json()
        [model] = [m for m in models if m["project_name"] == "offline"]
        runs = requests.get(f"{peer.url}/runs/runbymodels/{model['id']}", timeout=10).json()
        assert len(runs) == 2
        for run in runs:
            name = "a" if run["hyperparameters"]["scale"] == RUNS["a"] else "b"
            losses = requests.get(f"{peer.url}/loss/", params={"run_id": run["id"]}, timeout=10).json()
            assert sorted(p["value"] for p in losses) == expected(name)
    finally:
        peer.stop()
