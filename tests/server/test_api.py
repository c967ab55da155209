"""The query API through the real app (in-process) and a real `stepline serve`, over each store: every test
taking ``served`` runs once over a logbook folder and once over PostgreSQL (tests/server/conftest.py)."""

from __future__ import annotations

import math
import os
import shutil

import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient

import stepline
from stepline import Logbook
from stepline.server.app import create_app
from stepline.server.stores import LogbookStore


@pytest.fixture
def book(served, logdir):
    """Two finished runs and one failed, in project 'vision', and one run in 'nlp'."""
    made = {}
    for i, status in enumerate(["finished", "finished", "failed"]):
        run = stepline.init(project="vision", name=f"resnet-{i}", dir=logdir, tags=[f"t{i}"],
                            config={"lr": 0.1 * (i + 1), "model": {"depth": 18, "width": 64 if i else 32}})
        for step in range(100):
            run.log({"train/loss": 1 / (step + 1) + i, "eval/acc": step / 100}, step=step, epoch=step / 50)
        run.info("epoch done", epoch=1)
        run.warning("slow batch")
        run.files.save({"acc": 0.9}, "results.json")
        run.summary.update(best_acc=0.99)
        run.finish() if status == "finished" else run.fail("diverged")
        made[run.name] = run
    other = stepline.init(project="nlp", name="bert", dir=logdir)
    other.log({"loss": 1.0})
    other.finish()
    served.land()
    return made


@pytest.fixture
def client(served):
    return served.client


def test_projects_with_run_counts(client, book):
    projects = {p["name"]: p for p in client.get("/api/v1/projects").json()["projects"]}
    assert projects["vision"]["runs"] == 3 and projects["nlp"]["runs"] == 1
    assert projects["vision"]["last_activity"] >= book["resnet-2"].path.stat().st_mtime - 60


def test_runs_list_has_status_params_and_metric_summaries(client, book):
    runs = client.get("/api/v1/projects/vision/runs").json()["runs"]
    assert [r["name"] for r in runs] == ["resnet-0", "resnet-1", "resnet-2"]
    assert [r["status"] for r in runs] == ["finished", "finished", "failed"]
    first = runs[0]
    assert first["tags"] == ["t0"] and first["params"]["model"] == {"depth": 18, "width": 32}
    assert first["steps"] == 100 and first["duration"] >= 0
    loss = first["metrics"]["train/loss"]
    assert loss["count"] == 100 and loss["last"] == pytest.approx(0.01) and loss["last_step"] == 99
    assert loss["min_step"] == 99 and loss["max"] == 1.0 and loss["max_step"] == 0


def test_a_running_run_with_a_stale_heartbeat_is_crashed(served, logdir):
    run = stepline.init(project="p", dir=logdir)
    run.flush()
    served.land()
    fresh = served.client.get("/api/v1/projects/p/runs").json()["runs"]
    strict = create_app(served.new_store(heartbeat_timeout=1e-9))
    stale = TestClient(strict).get("/api/v1/projects/p/runs")
    assert fresh[0]["status"] == "running" and stale.json()["runs"][0]["status"] == "crashed"
    run.finish()


def test_one_run_with_metadata_params_summary_and_keys(client, book):
    run = book["resnet-2"]
    body = client.get(f"/api/v1/projects/vision/runs/{run.id}").json()
    assert body["name"] == "resnet-2" and body["status"] == "failed" and body["error"]["message"] == "diverged"
    assert body["summary"] == {"best_acc": 0.99} and body["params"]["lr"] == pytest.approx(0.3)
    assert body["meta"]["host"] and body["meta"]["pid"]
    keys = client.get(f"/api/v1/projects/vision/runs/{run.id}/metrics").json()["keys"]
    assert keys == ["train/loss", "eval/acc"]


def test_series_by_step_epoch_and_time(client, book):
    run = book["resnet-0"]
    base = f"/api/v1/projects/vision/runs/{run.id}/series?keys=train/loss,eval/acc"
    by_step = client.get(base).json()["series"]
    assert [s["key"] for s in by_step] == ["train/loss", "eval/acc"]
    assert by_step[0]["x"] == list(range(100)) and by_step[0]["count"] == 100 and not by_step[0]["downsampled"]
    assert by_step[0]["y"][:2] == [1.0, 0.5]
    assert client.get(base + "&x=epoch").json()["series"][0]["x"][50] == 1.0
    times = client.get(base + "&x=time").json()["series"][0]["x"]
    assert times == sorted(times) and times[0] > 1.7e9
    assert client.get(base + "&x=wall").status_code == 422
    assert client.get(f"/api/v1/projects/vision/runs/{run.id}/series?keys=nope").status_code == 404


@pytest.mark.slow
def test_downsampling_a_million_points_keeps_every_spike_and_nan(served, logdir):
    run = stepline.init(project="big", dir=logdir)
    values = np.random.default_rng(0).normal(size=1_000_000)
    values[123_457], values[654_321], values[999_998] = 50.0, -50.0, math.nan
    for step, value in enumerate(values.tolist()):
        run.log({"v": value}, step=step)
    run.finish()
    served.land()
    client = served.client
    [series] = client.get(f"/api/v1/projects/big/runs/{run.id}/series?keys=v&points=500").json()["series"]
    assert series["count"] == 1_000_000 and series["downsampled"] and len(series["x"]) <= 500
    kept = dict(zip(series["x"], series["y"]))
    assert kept[123_457] == 50.0 and kept[654_321] == -50.0 and kept[999_998] == "NaN"
    assert series["x"] == sorted(series["x"])
    [raw] = client.get(f"/api/v1/projects/big/runs/{run.id}/series?keys=v&raw=true&after=999990").json()["series"]
    assert raw["x"] == list(range(999_990, 1_000_000)) and raw["y"][8] == "NaN"


def test_a_live_page_gets_only_the_points_after_its_cursor(served, logdir):
    run = stepline.init(project="live", dir=logdir)
    url = f"/api/v1/projects/live/runs/{run.id}/series?keys=x&raw=true"
    run.log({"x": 1.0}, step=0)
    run.flush()
    served.land()
    assert served.client.get(url).json()["series"][0]["y"] == [1.0]
    run.log({"x": 7.0}, step=5)
    run.log({"y": 2.0}, step=5)
    run.flush()
    served.land()
    body = served.client.get(url + "&after=1").json()["series"][0]
    assert body["count"] == 2 and body["x"] == [5] and body["y"] == [7.0]
    assert served.client.get(f"/api/v1/projects/live/runs/{run.id}/metrics").json()["keys"] == ["x", "y"]
    run.finish()
    served.land()
    assert served.client.get("/api/v1/projects/live/runs").json()["runs"][0]["status"] == "finished"


def test_the_logbook_store_leaves_a_line_being_written_for_the_next_refresh(logdir):
    run = stepline.init(project="live", dir=logdir)
    store = LogbookStore(logdir)
    client = TestClient(create_app(store))
    run.log({"x": 1.0}, step=0)
    run.flush()
    url = f"/api/v1/projects/live/runs/{run.id}/series?keys=x&raw=true"
    assert client.get(url).json()["series"][0]["y"] == [1.0]
    # A line still being written is left for the next refresh, not parsed torn.
    with open(run.path / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"type":"metrics","seq":99,"time":1.0,"step":5,"values":{"x":')
    assert client.get(url).json()["series"][0]["count"] == 1
    with open(run.path / "metrics.jsonl", "ab") as handle:
        handle.write(b'7.0}}\n')
    body = client.get(url + "&after=1").json()["series"][0]
    assert body["count"] == 2 and body["x"] == [5] and body["y"] == [7.0]
    view = Logbook(logdir).run(run.id)
    assert view.series("x").values == [1.0, 7.0] and view.problems == {"torn_lines": 0, "duplicate_records": 0}
    run.finish()


def test_the_logbook_store_keeps_no_more_than_its_cache_bound_and_still_answers(logdir):
    runs = []
    for r in range(6):
        run = stepline.init(project="big", dir=logdir)
        for step in range(20_000):  # each series, as the store holds it: 4 columns x 8 bytes x 20,000 = 640 KB
            run.log({"loss": step + r * 0.5, "acc": step % 10}, step=step)
        run.finish()
        runs.append(run)
    store = LogbookStore(logdir, cache_mb=1)
    client = TestClient(create_app(store))
    for _ in range(2):
        for r, run in enumerate(runs):
            url = f"/api/v1/projects/big/runs/{run.id}/series?keys=loss,acc&points=100"
            loss, acc = client.get(url).json()["series"]
            assert loss["count"] == 20_000 and loss["y"][-1] == 19_999 + r * 0.5 and max(acc["y"]) == 9
            held, limit = store.memory_held()
            assert held <= limit == 1 << 20
    listed = client.get("/api/v1/projects/big/runs").json()["runs"]
    assert [run["metrics"]["loss"]["count"] for run in listed] == [20_000] * 6


def test_logs_paged_and_by_level(client, book):
    run = book["resnet-1"]
    url = f"/api/v1/projects/vision/runs/{run.id}/logs"
    everything = client.get(url).json()
    assert everything["total"] == 2 and [line["level"] for line in everything["logs"]] == ["INFO", "WARNING"]
    assert everything["logs"][0]["context"] == {"epoch": 1}
    assert [line["message"] for line in client.get(url + "?level=warning").json()["logs"]] == ["slow batch"]
    page = client.get(url + "?offset=1&limit=1").json()
    assert page["total"] == 2 and [line["message"] for line in page["logs"]] == ["slow batch"]


def test_files_list_download_and_no_way_out(served, client, book, logdir):
    run = book["resnet-0"]
    base = f"/api/v1/projects/vision/runs/{run.id}/files"
    assert client.get(base).json()["files"] == [{"path": "results.json", "size": len(
        (run.path / "files/results.json").read_bytes())}]
    download = client.get(f"{base}/results.json")
    assert download.json() == {"acc": 0.9} and download.headers["content-type"] == "application/json"
    if served.kind == "logbook":  # a link in the served folder pointing out of the run is refused
        (run.path / "files" / "escape").symlink_to(run.path / "meta.json")
    for bad in ["../meta.json", "..%2Fmeta.json", "%2e%2e/%2e%2e/nlp", "escape", "missing.txt"]:
        response = client.get(f"{base}/{bad}")
        assert response.status_code in (400, 404), bad
        assert b'"id"' not in response.content


def test_delete_run_and_project(served, client, book, logdir):
    running = stepline.init(project="vision", name="live", dir=logdir)
    running.flush()
    served.land()
    assert client.delete(f"/api/v1/projects/vision/runs/{running.id}").status_code == 409
    gone = book["resnet-0"]
    assert client.delete(f"/api/v1/projects/vision/runs/{gone.id}").json() == {"deleted": gone.id}
    assert client.get(f"/api/v1/projects/vision/runs/{gone.id}").status_code == 404
    assert served.kind != "logbook" or not gone.path.exists()  # a served folder loses the run's folder
    shutil.rmtree(gone.path, ignore_errors=True)  # the trainer's own copy, which land() would bring back
    assert client.delete("/api/v1/projects/vision").status_code == 409  # 'live' is running
    running.finish()
    served.land()
    assert client.delete("/api/v1/projects/vision").json() == {"deleted": "vision", "runs": 3}
    assert [p["name"] for p in client.get("/api/v1/projects").json()["projects"]] == ["nlp"]


def test_runs_are_found_by_name_after_runs_are_made_and_deleted(served, client, book, logdir):
    """What LMTracker's and Trackio's routes look their runs up with, on every request."""
    assert [meta["id"] for meta in served.store.runs_named("vision", "resnet-1")] == [book["resnet-1"].id]
    assert served.store.runs_named("vision", "nobody") == [] and served.store.runs_named("empty", "x") == []
    again = stepline.init(project="vision", name="resnet-1", dir=logdir, tags=["again"])  # made since: found too
    again.finish()
    served.land()
    found = served.store.runs_named("vision", "resnet-1")
    assert [meta["id"] for meta in found] == [book["resnet-1"].id, again.id]  # oldest first
    assert found[1]["tags"] == ["again"] and found[1]["project"] == "vision"
    assert client.delete(f"/api/v1/projects/vision/runs/{book['resnet-1'].id}").status_code == 200
    assert [meta["id"] for meta in served.store.runs_named("vision", "resnet-1")] == [again.id]


def test_compare_gives_series_and_the_params_that_differ(client, book):
    ids = ",".join(book[name].id for name in ("resnet-0", "resnet-1"))
    body = client.get(f"/api/v1/projects/vision/compare?runs={ids}&keys=train/loss").json()
    assert [r["name"] for r in body["runs"]] == ["resnet-0", "resnet-1"]
    assert [len(r["series"][0]["x"]) for r in body["runs"]] == [100, 100]
    assert body["params_diff"] == {"lr": [pytest.approx(0.1), pytest.approx(0.2)], "model.width": [32, 64]}


@pytest.mark.parametrize("path", ["/api/v1/projects/..%2F..%2Fetc/runs", "/api/v1/projects/a%00b/runs",
                                  "/api/v1/projects/vision/runs/..%2F..%2Fnlp"])
def test_hostile_names_are_refused(client, book, path):
    assert client.get(path).status_code in (400, 404)


def test_oversized_requests_and_cors(served, client, book, logdir):
    assert client.post("/api/v1/projects", content=b"x" * (2 << 20)).status_code == 413
    assert "access-control-allow-origin" not in client.get("/api/v1/projects", headers={"Origin": "http://evil"}).headers
    allowed = TestClient(create_app(served.store, cors_origins=["http://team"]))
    headers = allowed.get("/api/v1/projects", headers={"Origin": "http://team"}).headers
    assert headers["access-control-allow-origin"] == "http://team"


def test_openapi_docs_and_dashboard_are_served(client):
    assert "/api/v1/projects/{project}/runs/{run_id}/series" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/vendor/uPlot.iife.min.js").status_code == 200
    assert "MIT" in client.get("/static/vendor/uPlot-LICENSE.txt").text


def test_stepline_serve_on_loopback_and_stops_cleanly(served, server, book):
    process = server("--store", served.location)
    projects = requests.get(f"{process.url}/api/v1/projects", timeout=10).json()["projects"]
    assert {p["name"] for p in projects} == {"vision", "nlp"}
    assert process.stop() == 0
    assert f"http://127.0.0.1:{process.port}/" in process.process.stdout.read()


def test_stepline_serve_refuses_other_addresses(logdir):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "serve", str(logdir), "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "needs a token" in result.stderr and "127.0.0.1" in result.stderr
    assert "stepline server token create" in result.stderr


def test_a_misspelled_series_key_is_a_404_naming_the_closest(client, book):
    run_id = book["resnet-0"].id
    response = client.get(f"/api/v1/projects/vision/runs/{run_id}/series", params={"keys": "train/los"})
    assert response.status_code == 404 and "did you mean 'train/loss'" in response.json()["detail"]
    answer = client.get(f"/api/v1/projects/vision/runs/{run_id}/series", params={"keys": "train/loss", "after": 100})
    assert answer.status_code == 200 and answer.json()["series"][0]["x"] == []  # a cursor at the end: no new points


def test_a_pushed_batch_is_in_the_run_index_at_once(logdir):
    """The server's own readers read a run it was just sent from the run's index, not from its JSONL."""
    from stepline.logbook.index import MetricIndex

    store = LogbookStore(logdir)
    try:
        writer = store.open("pushed", "abcd1234", {"name": "pushed"})
        for batch in range(3):
            writer.append([{"type": "metrics", "seq": batch * 100 + k + 1, "time": 1.0, "step": batch * 100 + k,
                            "values": {"loss": float(k)}} for k in range(100)])
            index = MetricIndex(logdir / "pushed" / "abcd1234")
            assert index.load() and index.covered == os.path.getsize(logdir / "pushed" / "abcd1234" / "metrics.jsonl")
            assert index.summaries()["loss"].count == (batch + 1) * 100
    finally:
        store.close()
