"""Media travel to a real `stepline serve` (over a folder and over PostgreSQL): live, by sync after an outage, and
by migration; peers that keep none say so once. Read back through the server's API, files byte for byte."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import requests

import stepline
from stepline import Logbook
from tests.server.traintrack_double import TrainTrackDouble


def log_media(run, steps=3):
    rng = np.random.default_rng(0)
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1),
                 "samples": [stepline.Image(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), caption=f"s{step}"),
                             stepline.Image(rng.random((4, 4)))],
                 "weights": stepline.Histogram(rng.normal(size=200))}, step=step)
    run.log({"preds": stepline.Table(rows=[[1, "cat"]], columns=["id", "label"]), "note": stepline.Text("done"),
             "tone": stepline.Audio(np.zeros(100), sample_rate=1000)}, step=steps)


def same_media_as_local(url, project, run_id, local):
    """The server's media of a run are the local ones, every file byte for byte."""
    remote = requests.get(f"{url}/api/v1/projects/{project}/runs/{run_id}/media", timeout=30).json()["media"]
    mine = local.media()
    assert [(r["key"], r["step"], r["kind"]) for r in remote] == [(r["key"], r["step"], r["kind"]) for r in mine]
    for theirs, ours in zip(remote, mine):
        assert len(theirs["items"]) == len(ours["items"])
        for item, own in zip(theirs["items"], ours["items"]):
            assert {k: v for k, v in item.items() if k != "url"} == {k: v for k, v in own.items()
                                                                    if k not in ("path", "text")}
            if "url" in item:
                assert requests.get(url + item["url"], timeout=30).content == own["path"].read_bytes()
    return len(remote)


def test_media_pushed_live_land_on_the_server(store_args, server, tmp_path, logdir):
    process = server(*store_args, root=tmp_path / "server")
    run = stepline.init(project="p", dir=logdir, backend=process.url)
    log_media(run)
    assert run.finish(timeout=60)
    assert same_media_as_local(process.url, "p", run.id, Logbook(logdir).run(run.id)) == 3 * 2 + 3


def test_offline_media_are_synced_once(store_args, server, tmp_path, logdir):
    process = server(*store_args, root=tmp_path / "server")
    run = stepline.init(project="p", name="later", dir=logdir)
    log_media(run, steps=2)
    run.finish()
    for _ in range(2):  # the second sync finds everything there
        result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", "later", "--dir", str(logdir),
                                 "--remote", process.url], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert "0 records and 0 files sent" in result.stderr
    assert same_media_as_local(process.url, "p", run.id, Logbook(logdir).run(run.id)) == 2 * 2 + 3


@pytest.mark.postgres
def test_a_migrated_logbook_brings_its_media(logdir, database):
    from stepline.server.migrate import migrate
    from stepline.server.stores.postgres import PostgresStore

    run = stepline.init(project="p", dir=logdir)
    log_media(run, steps=1)
    run.finish()
    store = PostgresStore(database)
    try:
        migrate(logdir, store)
        local = Logbook(logdir).run(run.id)
        media = store.media("p", run.id, None)
        assert [(r["key"], r["kind"]) for r in media] == [(r["key"], r["kind"]) for r in local.media()]
        image = local.media("samples")[0]["items"][0]
        size, chunks = store.media_file("p", run.id, image["file"].split("/")[-1])
        assert b"".join(chunks) == image["path"].read_bytes() and size == image["path"].stat().st_size
        assert store.files("p", run.id) == {}  # media files are not among the run's files
    finally:
        store.close()


def test_a_media_record_naming_a_file_outside_media_is_refused(server, tmp_path):
    process = server(root=tmp_path / "server")
    base = f"{process.url}/api/v1/projects/p/runs/abcd1234"
    assert requests.put(base, json={"meta": {}}, timeout=10).status_code == 200
    bad = {"type": "media", "seq": 1, "time": 1.0, "step": 0, "key": "x", "kind": "image",
           "items": [{"file": "media/../meta.json"}]}
    answer = requests.post(f"{base}/events", json={"events": [bad]}, timeout=10)
    assert answer.status_code == 422 and "media/<seq>-<n>.<ext>" in answer.text
    octets = {"Content-Type": "application/octet-stream"}
    assert requests.put(f"{base}/media/..%2Fmeta.json", data=b"x", headers=octets, timeout=10).status_code in (400,
                                                                                                              404)
    assert requests.put(f"{base}/media/1-0.png", data=b"\x89PNG", headers=octets, timeout=10).json()["size"] == 4


def test_a_peer_that_keeps_no_media_says_so_once_and_finish_counts_them_as_kept_locally(logdir):
    double = TrainTrackDouble()
    try:
        with pytest.warns(stepline.SteplineWarning, match="gets no media") as said:
            run = stepline.init(project="p", dir=logdir, backend=double.backend)
            log_media(run, steps=2)
            assert run.finish(timeout=60)  # nothing unsent: media were never for this backend
        assert len([w for w in said if "gets no media" in str(w.message)]) == 1
        assert [r["step"] for r in double.app.state.db["loss"]] == [0, 1]
    finally:
        double.stop()
