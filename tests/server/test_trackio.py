"""Trackio's bulk log served by a real `stepline serve`, driven by the real trackio package."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid

import pytest
import requests

import stepline
from stepline import Logbook
from tests.conftest import REPO, run_python

pytest.importorskip("trackio")


def trackio_script(url: str, body: str, token: str = "open") -> str:
    return f"""
import math, os
os.environ["TRACKIO_WRITE_TOKEN"] = {token!r}
import trackio
{body}
"""


@pytest.mark.peer  # the real trackio client, in a process of its own
def test_the_real_trackio_client_logs_into_stepline(server, logdir, tmp_path):
    process = server()
    result = run_python(trackio_script(process.url, f"""
trackio.init(project="tp", name="run-a", server_url={process.url!r}, config={{"lr": 0.1, "layers": [2, 4]}})
for i in range(20):
    trackio.log({{"loss": 1 / (i + 1), "odd": math.nan if i == 3 else float(i % 2)}})
trackio.log({{"acc": 0.5}}, step=100)
trackio.finish()
"""), env={"TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    view = Logbook(logdir).run("run-a", project="tp")
    loss, odd = view.series("loss"), view.series("odd")
    assert loss.steps == list(range(20)) and loss.values == pytest.approx([1 / (i + 1) for i in range(20)])
    assert math.isnan(odd.values[3]) and odd.values[4] == 0.0
    assert view.series("acc").steps == [100]
    params = view.params()  # the client adds its own keys (_Created, _Username, ...): kept as sent
    assert params["lr"] == 0.1 and params["layers"] == [2, 4] and "_Created" in params
    assert view.tags == ["trackio"] and view.status == "finished"
    runs = requests.post(f"{process.url}/api/get_runs_for_project", json={"args": [], "kwargs": {"project": "tp"}},
                         timeout=10).json()["data"]
    assert [r["name"] for r in runs] == ["run-a"]


def test_bulk_log_is_idempotent_by_log_id_and_keeps_config_once(server, logdir):
    process = server()
    log_id = str(uuid.uuid4())
    entry = {"project": "p", "run": "r", "run_id": None, "metrics": {"x": 1.0}, "step": None,
             "config": {"lr": 0.1}, "log_id": log_id}
    body = {"logs": [entry], "hf_token": None}
    for _ in range(3):  # the same batch sent again after lost answers
        assert requests.post(f"{process.url}/api/bulk_log", json=body, timeout=10).status_code == 200
    second = {**entry, "metrics": {"x": 2.0}, "config": {"lr": 9.9}, "log_id": str(uuid.uuid4())}
    requests.post(f"{process.url}/api/bulk_log", json={"args": [], "kwargs": {"logs": [second], "hf_token": None}},
                  timeout=10)
    third = {**entry, "metrics": {"x": 3.0}, "log_id": str(uuid.uuid4())}
    twice = requests.post(f"{process.url}/api/bulk_log", json={"logs": [third, third], "hf_token": None}, timeout=10)
    assert twice.json() == {"data": {"stored": 1}}  # one log id twice in one batch: stored once
    view = Logbook(logdir).run("r", project="p")
    assert view.series("x").values == [1.0, 2.0, 3.0] and view.series("x").steps == [0, 1, 2]
    assert view.params() == {"lr": 0.1}


def test_trackio_errors_are_trackios(server, logdir):
    process = server()
    url = f"{process.url}/api"
    assert requests.post(f"{url}/bulk_log", json={"hf_token": None}, timeout=10).json() == {
        "error": "Missing required parameter: logs"}
    assert requests.post(f"{url}/bulk_log", json={"logs": []}, timeout=10).status_code == 400
    unknown = requests.post(f"{url}/nope", json={}, timeout=10)
    assert unknown.status_code == 404 and unknown.json() == {"error": "Unknown API: nope"}
    bad = requests.post(f"{url}/bulk_log", json={"logs": [{"project": "../x", "run": "r", "metrics": {}}],
                                                 "hf_token": None}, timeout=10)
    assert bad.status_code == 400 and "project" in bad.json()["error"]
    numbered = requests.post(f"{url}/bulk_log", json={"logs": [{"project": "p", "run": "r", "metrics": {"x": 1},
                                                                 "log_id": 7}], "hf_token": None}, timeout=10)
    assert numbered.status_code == 400 and "log_id must be a string" in numbered.json()["error"]
    assert requests.get(f"{process.url}/version", timeout=10).json()["api_version"] == 1


@pytest.mark.peer  # the real trackio client, in a process of its own
def test_a_server_with_tokens_wants_one_as_the_write_token(server, logdir, tmp_path):
    admin = [sys.executable, "-m", "stepline.cli.main", "server"]
    subprocess.run([*admin, "user", "add", "ana", "--dir", str(logdir)], check=True, capture_output=True)
    token = subprocess.run([*admin, "token", "create", "--user", "ana", "--dir", str(logdir)], check=True,
                           capture_output=True, text=True).stdout.strip()
    process = server()
    body = {"logs": [{"project": "p", "run": "r", "metrics": {"x": 1}, "step": 0}], "hf_token": None}
    refused = requests.post(f"{process.url}/api/bulk_log", json=body, headers={"X-Trackio-Write-Token": "bad"},
                            timeout=10)
    assert refused.status_code == 400 and "write token" in refused.json()["error"]
    result = run_python(trackio_script(process.url, f"""
trackio.init(project="tp", name="tokened", server_url={process.url!r})
trackio.log({{"loss": 0.5}})
trackio.finish()
""", token=token), env={"TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert Logbook(logdir).run("tokened", project="tp").series("loss").values == [0.5]


def test_first_logs_arriving_at_once_make_one_run(store_args, server, tmp_path):
    """Eight batches for one new run at once; over PostgreSQL, to two server processes."""
    import threading

    urls = [server(*store_args, root=tmp_path / "served").url for _ in range(2 if store_args else 1)]
    start, answers = threading.Barrier(8), []

    def log(i):
        entry = {"project": "p", "run": "r", "run_id": None, "metrics": {"i": i}, "step": i, "config": None,
                 "log_id": str(uuid.uuid4())}
        start.wait()
        answers.append(requests.post(f"{urls[i % len(urls)]}/api/bulk_log", json={"logs": [entry], "hf_token": None},
                                     timeout=30).json())

    threads = [threading.Thread(target=log, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [{"data": {"stored": 1}}] * 8
    [run] = requests.get(f"{urls[-1]}/api/v1/projects/p/runs", timeout=10).json()["runs"]
    series = requests.get(f"{urls[-1]}/api/v1/projects/p/runs/{run['id']}/series", params={"keys": "i", "raw": "true"},
                          timeout=10).json()["series"][0]
    assert sorted(series["x"]) == list(range(8))


def test_every_trackio_route_goes_through_the_token_rules(server, logdir):
    """A --require-token server: no Trackio call reads or writes without a token, and a token limited to one
    project reaches only that project."""
    admin = [sys.executable, "-m", "stepline.cli.main", "server"]
    subprocess.run([*admin, "user", "add", "ana", "--dir", str(logdir)], check=True, capture_output=True)
    alpha = subprocess.run([*admin, "token", "create", "--user", "ana", "--project", "alpha", "--dir", str(logdir)],
                           check=True, capture_output=True, text=True).stdout.strip()
    stepline.init(project="beta", name="secret-run", dir=logdir).finish()
    process = server("--require-token")
    url = f"{process.url}/api"
    listing = requests.post(f"{url}/get_runs_for_project", json={"project": "beta"}, timeout=10)
    assert listing.status_code == 400 and "secret-run" not in listing.text and "token" in listing.json()["error"]
    as_alpha = {"X-Trackio-Write-Token": alpha}
    listing = requests.post(f"{url}/get_runs_for_project", json={"project": "beta"}, headers=as_alpha, timeout=10)
    assert listing.status_code == 400 and "not for project 'beta'" in listing.json()["error"]
    assert requests.post(f"{url}/get_runs_for_project", json={"project": "alpha"}, headers=as_alpha,
                         timeout=10).json() == {"data": []}
    entry = {"project": "beta", "run": "r", "metrics": {"x": 1}, "step": 0}
    for headers in ({}, as_alpha):
        write = requests.post(f"{url}/bulk_log", json={"logs": [entry], "hf_token": None}, headers=headers, timeout=10)
        assert write.status_code == 400 and "token" in write.json()["error"]
    assert [r.name for r in Logbook(logdir).runs("beta")] == ["secret-run"]  # nothing written into beta
    ok = requests.post(f"{url}/bulk_log", json={"logs": [{**entry, "project": "alpha"}], "hf_token": None},
                       headers=as_alpha, timeout=10)
    assert ok.status_code == 200 and Logbook(logdir).run("r", project="alpha").series("x").values == [1]
