"""LMTracker's API served by a real `stepline serve`, driven as LMTracker's own clients drive it."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import requests

from stepline import Logbook

AUTH = {"Authorization": "ana:s3cret:with:colons"}  # split at the first ':' only


@pytest.fixture
def lmtracker(server, logdir):
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "user", "add", "ana", "--password-stdin",
                    "--dir", str(logdir)], input="s3cret:with:colons\n", text=True, check=True, capture_output=True)
    process = server()
    return f"{process.url}/api"


def post(base, route, body=None, headers=AUTH):
    response = requests.post(f"{base}/{route}", json=body, headers=headers, timeout=10)
    return response.status_code, response.json()


def seed_callback(*args):
    """LMTracker's own Trainer example (examples/transformers-trainer.py of github.com/omni-devel/lmtracker):
    create the project, then push every on_log dict's finite numbers, with the global step and epoch at the
    top level of the push. transformers is imported here, not when the suite is collected."""
    from transformers import TrainerCallback

    class LMTracker(TrainerCallback):
        def __init__(self, project_name, run_name, username, password, base_url):
            self.project_name, self.run_name, self.base_url = project_name, run_name, base_url
            self.headers = {"Authorization": f"{username}:{password}"}
            self.answers = []
            requests.post(f"{base_url}/create-project", json={"name": project_name}, headers=self.headers,
                          timeout=10).raise_for_status()

        def on_log(self, args, state, control, logs=None, **kwargs):
            metrics = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)}
            if not metrics:
                return
            response = requests.post(f"{self.base_url}/push-metrics", headers=self.headers, timeout=10, json={
                "project_name": self.project_name, "run_name": self.run_name, "step": state.global_step,
                "epoch": state.epoch, "metrics": metrics})
            self.answers.append((response.status_code, response.json()))

    return LMTracker(*args)


def test_check_user_and_wrong_credentials(lmtracker):
    assert requests.get(f"{lmtracker}/check-user", headers=AUTH, timeout=10).json() == {"ok": True}
    for headers in ({"Authorization": "ana:wrong"}, {"Authorization": "nobody:x"}, {}):
        response = requests.get(f"{lmtracker}/check-user", headers=headers, timeout=10)
        assert response.status_code == 401 and response.json() == {"ok": False}
    assert post(lmtracker, "get-projects", headers={"Authorization": "ana:wrong"}) == (401, {"ok": False})


@pytest.mark.slow
def test_a_real_trainer_pushing_through_lmtracker_s_own_example(lmtracker, tmp_path, logdir):
    from transformers import Trainer

    from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

    tracker = seed_callback("MyAwesomeModel", "2026-11-25-12-00-00", "ana", "s3cret:with:colons", lmtracker)
    trainer = Trainer(model=tiny_bert(), args=tiny_args(tmp_path / "out", max_steps=6, eval_strategy="steps",
                                                        eval_steps=3, logging_steps=2),
                      train_dataset=SyntheticText(64), eval_dataset=SyntheticText(16, seed=1), callbacks=[tracker])
    trainer.train()
    history = trainer.state.log_history
    # Every push lands, eval and end-of-training pushes included (LMTracker itself refuses those: new keys).
    assert tracker.answers == [(200, {"ok": True})] * len(history)
    status, body = post(lmtracker, "get-run", {"project_name": "MyAwesomeModel", "run_name": "2026-11-25-12-00-00"})
    assert status == 200 and len(body["metrics"]) == len(history)
    assert [row.get("loss") for row in body["metrics"]] == [entry.get("loss") for entry in history]
    # ... at the global step the client sent, not at the push count
    [view] = Logbook(logdir).runs("MyAwesomeModel")
    train = [entry for entry in history if "loss" in entry]
    assert view.series("loss").steps == [entry["step"] for entry in train] == [2, 4, 6]
    assert view.series("loss").values == [entry["loss"] for entry in train]
    assert view.series("eval_loss").steps == [3, 6]
    assert view.series("train_runtime").steps == [6]
    assert view.series("loss").epochs == [entry["epoch"] for entry in train]
    assert view.name == "2026-11-25-12-00-00" and view.status == "finished" and view.meta["user"] == "ana"


def test_projects_runs_steps_and_deletes(lmtracker, logdir):
    assert post(lmtracker, "push-metrics", {"project_name": "nope", "run_name": "r", "metrics": {"a": 1}}) == (
        400, {"ok": False, "message": "No such file or directory (os error 2)"})
    assert post(lmtracker, "create-project", {"name": "vision"}) == (200, {"ok": True})
    for step in (10, 20, 30):
        assert post(lmtracker, "push-metrics", {"project_name": "vision", "run_name": "stepped",
                                               "metrics": {"step": step, "acc": step / 100}})[0] == 200
    assert post(lmtracker, "push-metrics", {"project_name": "vision", "run_name": "stepped",
                                           "metrics": {"step": 40, "acc": "high"}}) == (
        400, {"ok": False, "message": "Invalid schema"})
    assert Logbook(logdir).run("stepped", project="vision").series("acc").steps == [10, 20, 30]
    assert post(lmtracker, "get-run", {"project_name": "vision", "run_name": "stepped"})[1]["metrics"] == [
        {"step": 10, "acc": 0.1}, {"step": 20, "acc": 0.2}, {"step": 30, "acc": 0.3}]
    post(lmtracker, "push-metrics", {"project_name": "vision", "run_name": "second", "metrics": {"x": 1}})
    assert [r["name"] for r in post(lmtracker, "get-runs", {"project_name": "vision"})[1]["runs"]] == [
        "stepped", "second"]
    assert [p["name"] for p in post(lmtracker, "get-projects")[1]["projects"]] == ["vision"]
    for bad in ("a/b", "x:y", "q?", 'quo"te', "pi|pe", "a\\b"):
        assert post(lmtracker, "create-project", {"name": bad}) == (400, {"ok": False, "message": "Invalid name"})
    assert post(lmtracker, "get-run", {"project_name": "vision", "run_name": "ghost"}) == (
        400, {"ok": False, "message": "Run not found"})
    assert post(lmtracker, "delete-run", {"project_name": "vision", "run_name": "second"}) == (200, {"ok": True})
    assert [r.name for r in Logbook(logdir).runs("vision")] == ["stepped"]
    assert post(lmtracker, "delete-project", {"name": "vision"}) == (200, {"ok": True})
    assert Logbook(logdir).runs() == []


def test_first_pushes_arriving_at_once_make_one_run(store_args, server, tmp_path):
    """Eight clients (DDP ranks, say) push their first point to one new run at once; over PostgreSQL, to two
    server processes."""
    import threading

    where = store_args or ("--dir", str(tmp_path / "served"))
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "user", "add", "ana", "--password-stdin",
                    *where], input="s3cret:with:colons\n", text=True, check=True, capture_output=True)
    urls = [f"{server(*store_args, root=tmp_path / 'served').url}/api" for _ in range(2 if store_args else 1)]
    assert post(urls[0], "create-project", {"name": "ddp"}) == (200, {"ok": True})
    start, answers = threading.Barrier(8), []

    def push(rank):
        start.wait()
        answers.append(post(urls[rank % len(urls)], "push-metrics", {"project_name": "ddp", "run_name": "r",
                                                                       "metrics": {"rank": rank}}))

    threads = [threading.Thread(target=push, args=(rank,)) for rank in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [(200, {"ok": True})] * 8
    assert [r["name"] for r in post(urls[-1], "get-runs", {"project_name": "ddp"})[1]["runs"]] == ["r"]
    rows = post(urls[-1], "get-run", {"project_name": "ddp", "run_name": "r"})[1]["metrics"]
    assert sorted(row["rank"] for row in rows) == list(range(8))


def test_every_lmtracker_route_needs_the_credentials_on_a_token_server(server, logdir):
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "user", "add", "ana", "--password-stdin",
                    "--dir", str(logdir)], input="s3cret:with:colons\n", text=True, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "token", "create", "--user", "ana",
                    "--dir", str(logdir)], check=True, capture_output=True)
    base = f"{server('--require-token').url}/api"
    assert post(base, "create-project", {"name": "vision"}) == (200, {"ok": True})
    assert post(base, "push-metrics", {"project_name": "vision", "run_name": "r", "metrics": {"x": 1}})[0] == 200
    bodies = {"create-project": {"name": "other"}, "get-projects": {}, "get-runs": {"project_name": "vision"},
              "get-run": {"project_name": "vision", "run_name": "r"}, "delete-run": {"project_name": "vision",
              "run_name": "r"}, "delete-project": {"name": "vision"},
              "push-metrics": {"project_name": "vision", "run_name": "r", "metrics": {"x": 2}}}
    for headers in ({}, {"Authorization": "ana:wrong"}, {"Authorization": "Bearer stl_x_y"}):
        for route, body in bodies.items():
            assert post(base, route, body, headers=headers) == (401, {"ok": False}), (route, headers)
        assert requests.get(f"{base}/check-user", headers=headers, timeout=10).status_code == 401
    assert [r.series("x").values for r in Logbook(logdir).runs("vision")] == [[1]]  # nothing more landed
