"""Pushing runs to a real MLflow tracking server (`mlflow server`, sqlite store) on loopback."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

import stepline
from stepline import Logbook
from tests.conftest import start_python
from tests.server.mlflow_peer import MLflowServer

pytestmark = pytest.mark.peer

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def mlflow_server(tmp_path):
    """MLflow servers of the test's own, for a test that stops one or starts it with other flags; the others
    share ``mlflow_peer``."""
    started = []

    def start(port=None, artifacts=None):
        started.append(MLflowServer(tmp_path / "mlflow", port, artifacts))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def the_run(client, experiment, name):
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                               filter_string=f"attributes.run_name = '{name}'")
    return run


def has_params(client, experiment, name):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], filter_string=f"attributes.run_name = '{name}'") if found else []
    return any(run.data.params for run in runs)


def test_a_run_lands_in_mlflow_and_mlflow_s_own_client_reads_it(mlflow_peer, logdir):
    long_value = "x" * 10_000
    run = stepline.init(project="vision", name="resnet", dir=logdir, backend=["local", f"mlflow+{mlflow_peer.url}"],
                        config={"lr": 0.1, "model": {"layers": 12}, "notes": long_value}, tags=["cnn"])
    with pytest.warns(stepline.SteplineWarning) as caught:
        for step in range(300):
            run.log({f"k{i}": step + i for i in range(5)} | {"nan": math.nan if step == 3 else 1.0}, step=step)
        deadline = time.time() + 60  # until the first params have reached MLflow
        while time.time() < deadline and not has_params(mlflow_peer.client(), "vision", "resnet"):
            time.sleep(0.2)
        run.params.update("model.layers", 24)  # MLflow keeps the first value: the change goes as a tag
        run.files.save({"acc": 0.9}, "results.json")
        run.info("log lines stay local")
        assert run.finish(timeout=60)
    messages = " ".join(str(w.message) for w in caught)
    assert "params/notes.json" in messages and "model.layers" in messages
    client = mlflow_peer.client()
    found = the_run(client, "vision", "resnet")
    assert found.info.status == "FINISHED" and found.data.tags["stepline.run_id"] == run.id
    assert found.data.tags["stepline.tag.cnn"] == "true"
    assert found.data.params["lr"] == "0.1" and found.data.params["model.layers"] == "12"
    assert found.data.tags["stepline.param.model.layers"] == "24"
    history = client.get_metric_history(found.info.run_id, "k2")
    assert [m.step for m in history] == list(range(300)) and [m.value for m in history] == [s + 2.0 for s in range(300)]
    assert math.isnan(next(m.value for m in client.get_metric_history(found.info.run_id, "nan") if m.step == 3))
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"results.json", "params"} <= artifacts
    notes = client.download_artifacts(found.info.run_id, "params/notes.json", str(logdir.parent))
    assert open(notes).read() == f'"{long_value}"'  # never truncated


def test_failed_and_killed_runs_end_so_in_mlflow(mlflow_peer, logdir):
    failed = stepline.init(project="vision", name="bad", dir=logdir, backend=f"mlflow+{mlflow_peer.url}")
    failed.log({"x": 1.0})
    failed.fail("diverged")
    with pytest.raises(KeyboardInterrupt):
        with stepline.init(project="vision", name="stopped", dir=logdir, backend=f"mlflow+{mlflow_peer.url}"):
            raise KeyboardInterrupt
    client = mlflow_peer.client()
    assert the_run(client, "vision", "bad").info.status == "FAILED"
    assert the_run(client, "vision", "stopped").info.status == "KILLED"


def test_mlflow_stopped_mid_run_gets_every_point_exactly_once(mlflow_server, logdir):
    server = mlflow_server()
    writer = start_python(f"""
        import time, stepline
        run = stepline.init(project="vision", name="outage", dir={str(logdir)!r}, backend="mlflow+{server.url}")
        for step in range(1500):
            run.log({{"v": step}}, step=step)
            time.sleep(0.004)
        print("finished", run.finish(timeout=120), flush=True)
    """)
    time.sleep(2.0)
    server.stop()
    time.sleep(1.0)
    back = mlflow_server(port=server.port)  # the same database, on the same address
    out, err = writer.communicate(timeout=240)
    assert "finished True" in out, err
    history = back.client().get_metric_history(the_run(back.client(), "vision", "outage").info.run_id, "v")
    assert sorted(m.step for m in history) == list(range(1500))  # each once


def test_sync_to_mlflow_after_the_fact_and_again(mlflow_peer, logdir):
    offline = stepline.init(project="vision", name="later", dir=logdir, config={"lr": 0.5})
    for step in range(20):
        offline.log({"x": float(step)}, step=step)
    offline.finish()
    for _ in range(2):
        result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", "later", "--dir", str(logdir),
                                 "--remote", f"mlflow+{mlflow_peer.url}"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    client = mlflow_peer.client()
    found = the_run(client, "vision", "later")
    assert [m.step for m in client.get_metric_history(found.info.run_id, "x")] == list(range(20))
    assert found.data.params == {"lr": "0.5"} and found.info.status == "FINISHED"
    assert Logbook(logdir).run("later").status == "finished"


def test_infinities_read_back_as_the_largest_double_and_say_so(mlflow_peer, logdir):
    run = stepline.init(project="vision", name="inf", dir=logdir, backend=f"mlflow+{mlflow_peer.url}")
    with pytest.warns(stepline.SteplineWarning, match=r"MLflow stores an infinity as 1\.798e\+308"):
        run.log({"x": math.inf, "y": -math.inf}, step=1)
        assert run.finish(timeout=60)
    client = mlflow_peer.client()
    found = the_run(client, "vision", "inf")
    assert [m.value for m in client.get_metric_history(found.info.run_id, "x")] == [sys.float_info.max]
    assert [m.value for m in client.get_metric_history(found.info.run_id, "y")] == [-sys.float_info.max]
    assert Logbook(logdir).run(run.id).series("x").values == [math.inf]  # kept whole locally


def test_images_and_tables_land_as_mlflow_s_own_log_image_and_log_table_lay_them_out(mlflow_peer, logdir, tmp_path):
    import json
    import re

    import numpy as np
    from PIL import Image

    run = stepline.init(project="vision", name="media", dir=logdir, backend=f"mlflow+{mlflow_peer.url}")
    with pytest.warns(stepline.SteplineWarning, match="histogram media stay in the local logbook"):
        for step in range(2):
            run.log({"val/samples": stepline.Image(np.full((4, 6, 3), 40 * (step + 1), dtype=np.uint8)),
                     "preds": stepline.Table(rows=[[step, "cat"]], columns=["id", "label"]),
                     "weights": stepline.Histogram([1.0, 2.0])}, step=step)
        assert run.finish(timeout=60)
    client = mlflow_peer.client()
    found = the_run(client, "vision", "media")
    assert found.data.tags["mlflow.loggedImages"] == "true"
    names = sorted(a.path for a in client.list_artifacts(found.info.run_id, "images"))
    pattern = r"images/val~samples\+step\+(\d)\+timestamp\+\d+\+[0-9a-f-]{36}(\.png|\+compressed\.webp)"
    files = {re.fullmatch(pattern, name).groups(): name for name in names}
    assert sorted(files) == [("0", "+compressed.webp"), ("0", ".png"), ("1", "+compressed.webp"), ("1", ".png")]
    png = client.download_artifacts(found.info.run_id, files["1", ".png"], str(tmp_path))
    assert np.asarray(Image.open(png)).tolist() == np.full((4, 6, 3), 80, dtype=np.uint8).tolist()
    webp = client.download_artifacts(found.info.run_id, files["1", "+compressed.webp"], str(tmp_path))
    assert Image.open(webp).format == "WEBP"
    logged = json.loads(found.data.tags["mlflow.loggedArtifacts"])
    assert logged == [{"path": "tables/preds/step_0.json", "type": "table"},
                      {"path": "tables/preds/step_1.json", "type": "table"}]
    mlflow.set_tracking_uri(mlflow_peer.url)  # load_table searches runs through the module's tracking URI
    try:  # MLflow's own reader of log_table's tables finds the table by the tag, and reads it
        table = client.load_table(found.info.experiment_id, "tables/preds/step_1.json", run_ids=[found.info.run_id])
    finally:
        mlflow.set_tracking_uri(None)
    assert table[["id", "label"]].values.tolist() == [[1, "cat"]]


def test_files_land_where_the_run_s_artifact_uri_says(mlflow_server, tmp_path, logdir):
    """With --default-artifact-root, the run's artifact_uri is that folder, not the proxy's destination; MLflow's
    own client and UI list the run's files from there."""
    root = tmp_path / "artifact-root"
    server = mlflow_server(artifacts=["--default-artifact-root", str(root)])
    run = stepline.init(project="vision", name="files", dir=logdir, backend=f"mlflow+{server.url}")
    run.files.save({"acc": 0.9}, "results.json")
    run.files.save(b"weights", "checkpoints/last.bin")
    assert run.finish(timeout=60)
    client = server.client()
    found = the_run(client, "vision", "files")
    assert found.info.artifact_uri.startswith(str(root))
    assert {a.path for a in client.list_artifacts(found.info.run_id)} == {"results.json", "checkpoints"}
    got = client.download_artifacts(found.info.run_id, "checkpoints/last.bin", str(tmp_path))
    assert open(got, "rb").read() == b"weights"


def test_a_url_of_the_wrong_kind_says_which_form_to_use(mlflow_peer, server, tmp_path, logdir):
    with pytest.warns(stepline.SteplineWarning) as caught:
        run = stepline.init(project="p", name="plain", dir=logdir, backend=mlflow_peer.url)  # http:// to MLflow
        run.log({"x": 1.0})
        run.finish(timeout=30)
    message = " ".join(str(w.message) for w in caught)
    assert f"looks like an MLflow server: use mlflow+{mlflow_peer.url}" in message
    assert "<html" not in message.lower() and "<!doctype" not in message.lower()
    stepline_server = server(root=tmp_path / "served")
    with pytest.warns(stepline.SteplineWarning) as caught:
        run = stepline.init(project="p", name="plus", dir=logdir, backend=f"mlflow+{stepline_server.url}")
        run.log({"x": 1.0})
        run.finish(timeout=30)
    message = " ".join(str(w.message) for w in caught)
    assert f"looks like a stepline server: use {stepline_server.url}" in message
