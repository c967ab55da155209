"""Pushing runs to a real Trackio server (`trackio show` from PyPI), and to stepline's own Trackio routes."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time

import pytest
import requests

import stepline
from stepline import Logbook
from tests.conftest import start_python, wait_until
from tests.server.conftest import free_port, stop_group, wait_for_http

pytestmark = pytest.mark.peer

pytest.importorskip("trackio")
TOKEN = "trackio-test-token"


class TrackioServer:
    def __init__(self, folder, port=None):
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        trackio = shutil.which("trackio") or os.path.join(os.path.dirname(sys.executable), "trackio")
        self.process = subprocess.Popen([trackio, "show", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env={**os.environ, "TRACKIO_DIR": str(folder),
                                        "TRACKIO_WRITE_TOKEN": TOKEN, "GRADIO_SERVER_PORT": str(self.port)},
                                        start_new_session=True)
        try:
            wait_for_http(f"{self.url}/version", self.process, "trackio show")
        except BaseException:
            self.stop()
            raise

    def call(self, name, **kwargs):
        return requests.post(f"{self.url}/api/{name}", json=kwargs, timeout=10).json()["data"]

    def values(self, project, run, metric, expected):
        """The metric's points once ``expected`` of them are readable (Trackio commits in the background)."""
        deadline = time.time() + 20
        while True:
            points = self.call("get_metric_values", project=project, run=run, metric_name=metric) or []
            if len(points) >= expected or time.time() > deadline:
                return points
            time.sleep(0.2)

    def stop(self):
        stop_group(self.process)


@pytest.fixture
def trackio_server(tmp_path):
    started = []

    def start(port=None):
        started.append(TrackioServer(tmp_path / "trackio", port))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def test_a_run_lands_in_a_real_trackio_server(trackio_server, logdir):
    peer = trackio_server()
    backend = ["local", f"trackio+{peer.url}?write_token={TOKEN}"]
    run = stepline.init(project="tp", name="pushed", dir=logdir, backend=backend, config={"lr": 0.1})
    for step in range(50):
        run.log({"loss": 1 / (step + 1), "odd": math.nan if step == 7 else 0.0}, step=step * 2)
    with pytest.warns(stepline.SteplineWarning, match="no log lines"):
        run.info("Trackio has no log lines: this stays local")
        assert run.finish(timeout=30)
    points = peer.values("tp", "pushed", "loss", expected=50)
    assert [p["step"] for p in points] == [s * 2 for s in range(50)]
    assert [p["value"] for p in points] == pytest.approx([1 / (s + 1) for s in range(50)])
    summary = peer.call("get_run_summary", project="tp", run="pushed")
    assert summary["config"]["lr"] == 0.1 and summary["num_logs"] == 50
    assert Logbook(logdir).run(run.id).series("loss").steps == [s * 2 for s in range(50)]  # local copy kept


def test_the_machine_s_figures_land_in_trackio_s_system_metrics(trackio_server, logdir):
    peer = trackio_server()
    run = stepline.init(project="tp", name="sampled", dir=logdir, backend=f"trackio+{peer.url}?write_token={TOKEN}",
                        system_metrics=True, system_interval=0.1)
    view = Logbook(logdir).run(run.id)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    wait_until(lambda: run.flush() and len([r for r in view.metrics() if "system/cpu.percent" in r]) >= 2, 60,
               "two samples of the machine")
    assert run.finish(timeout=30)
    samples = [r for r in Logbook(logdir).run(run.id).metrics() if "system/cpu.percent" in r]
    deadline = time.time() + 20
    while len(logs := peer.call("get_system_logs", project="tp", run="sampled") or []) < len(samples):
        assert time.time() < deadline, logs
        time.sleep(0.2)
    assert len(logs) == len(samples) and all("system/cpu.percent" in entry for entry in logs)
    assert [p["step"] for p in peer.values("tp", "sampled", "loss", expected=5)] == [0, 1, 2, 3, 4]
    stepped = peer.call("get_metric_values", project="tp", run="sampled", metric_name="system/cpu.percent")
    assert not stepped  # not among the stepped metrics


def test_media_land_as_trackio_s_own_and_its_server_serves_the_files(trackio_server, logdir):
    import numpy as np

    peer = trackio_server()
    run = stepline.init(project="tp", name="media", dir=logdir, backend=f"trackio+{peer.url}?write_token={TOKEN}")
    red, blue = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    run.log({"loss": 1.0, "sample": stepline.Image(red, caption="red")}, step=1)
    run.log({"sample": [stepline.Image(blue), stepline.Image(red)],
             "weights": stepline.Histogram(([1, 2, 1], [0.0, 1.0, 2.0, 3.0])),
             "preds": stepline.Table([[1, "cat"], [2, "dog"]], columns=["id", "label"]),
             "note": stepline.Text("**bold**"), "clip": stepline.Audio(np.zeros(800, np.float32), 8000)}, step=2)
    assert run.finish(timeout=30)

    deadline = time.time() + 20
    while len(logs := peer.call("get_logs", project="tp", run="media") or []) < 6:
        assert time.time() < deadline, logs
        time.sleep(0.2)
    values = [(entry["step"], key, value) for entry in logs for key, value in entry.items()
              if isinstance(value, dict) and "_type" in value]
    images = [(step, v) for step, key, v in values if key == "sample"]
    assert [(step, v["_type"], v["caption"]) for step, v in images] == [
        (1, "trackio.image", "red"), (2, "trackio.image", None), (2, "trackio.image", None)]
    for _, image in images:  # each file is where the point says, served by Trackio's /file
        served = requests.get(f"{peer.url}/file", params={"path": str(peer.folder / "media" / image["file_path"])},
                              timeout=10)
        assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    by_key = {key: v for _, key, v in values if key != "sample"}
    assert by_key["weights"] == {"_type": "trackio.histogram", "bins": [0.0, 1.0, 2.0, 3.0], "values": [1, 2, 1]}
    assert by_key["preds"] == {"_type": "trackio.table",
                               "_value": [{"id": 1, "label": "cat"}, {"id": 2, "label": "dog"}]}
    assert by_key["note"] == {"_type": "trackio.markdown", "_value": "**bold**"}
    assert by_key["clip"]["_type"] == "trackio.audio"
    clip = requests.get(f"{peer.url}/file", params={"path": str(peer.folder / "media" / by_key["clip"]["file_path"])},
                        timeout=10)
    assert clip.status_code == 200 and clip.content.startswith(b"RIFF")


def test_a_trackio_server_stopped_mid_run_costs_nothing_once_back(trackio_server, logdir):
    peer = trackio_server()
    writer = start_python(f"""
        import time, stepline
        run = stepline.init(project="tp", name="outage", dir={str(logdir)!r},
                            backend="trackio+{peer.url}?write_token={TOKEN}")
        print(run.id, flush=True)
        for step in range(2000):
            run.log({{"v": step}}, step=step)
            time.sleep(0.002)
        print("finished", run.finish(timeout=90), flush=True)
    """)
    writer.stdout.readline()
    def some_points():
        try:
            return bool(peer.call("get_metric_values", project="tp", run="outage", metric_name="v"))
        except (KeyError, ValueError, requests.RequestException):  # no such run yet
            return False

    wait_until(some_points, 120, "the first points on Trackio")
    peer.stop()
    time.sleep(2.0)  # two seconds of training while Trackio is away
    back = trackio_server(port=peer.port)
    out, err = writer.communicate(timeout=180)
    assert "finished True" in out, err
    points = back.values("tp", "outage", "v", expected=2000)
    assert [p["step"] for p in points] == list(range(2000))  # each once: log_id made the re-sends harmless


def test_a_trainer_run_pushed_to_stepline_s_own_trackio_routes(server, tmp_path, logdir):
    from transformers import Trainer

    from stepline.integrations.transformers import SteplineCallback
    from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

    target = tmp_path / "server-logbook"
    process = server(root=target)
    callback = SteplineCallback(project="hf", dir=logdir, backend=["local", f"trackio+{process.url}"])
    trainer = Trainer(model=tiny_bert(), args=tiny_args(tmp_path / "out", max_steps=6), train_dataset=SyntheticText(64),
                      callbacks=[callback])
    trainer.train()
    [view] = Logbook(target).runs("hf")
    local = Logbook(logdir).run(callback.run.id)
    assert view.series("train/loss").steps == local.series("train/loss").steps == [1, 2, 3, 4, 5, 6]
    assert view.series("train/loss").values == local.series("train/loss").values
    assert view.params()["training_args"]["max_steps"] == 6


def test_media_to_stepline_s_own_trackio_routes_never_stop_the_points(server, tmp_path, logdir):
    """stepline's Trackio routes stage no files and keep numbers only: images stay local (said once), and every
    point still lands."""
    import numpy as np

    process = server(root=tmp_path / "server-logbook")
    run = stepline.init(project="tm", name="m", dir=logdir, backend=f"trackio+{process.url}")
    with pytest.warns(stepline.SteplineWarning, match="takes no file uploads"):
        for step in range(3):
            run.log({"loss": float(step), "sample": stepline.Image(np.zeros((4, 4), np.uint8)),
                     "weights": stepline.Histogram([1.0, 2.0])}, step=step)
        assert run.finish(timeout=30)
    [view] = Logbook(tmp_path / "server-logbook").runs("tm")
    assert view.series("loss").steps == [0, 1, 2] and view.metric_keys() == ["loss"]


def test_a_bad_peer_url_is_a_clear_error(logdir):
    with pytest.raises(stepline.ConfigError, match="trackio"):
        stepline.init(project="p", dir=logdir, backend="trackio+ftp://x")
    with pytest.raises(stepline.ConfigError, match="not one stepline knows"):
        stepline.init(project="p", dir=logdir, backend=["local", "wandb://x"])


def test_the_environment_names_the_backends(server, monkeypatch, tmp_path, logdir):
    ingest = server(root=tmp_path / "a")
    trackio_routes = server(root=tmp_path / "b")
    monkeypatch.setenv("STEPLINE_REMOTE", f"{ingest.url},trackio+{trackio_routes.url}")
    run = stepline.init(project="p", name="both", dir=logdir)
    run.log({"x": 1.0})
    assert run.finish(timeout=30)
    for root in ("a", "b"):  # one through the ingest API, one through the Trackio routes
        assert Logbook(tmp_path / root).run("both", project="p").series("x").values == [1.0]
