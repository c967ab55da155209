"""What only the PostgreSQL store has: pushes over HTTP into `stepline serve --store postgresql://...`, its
per-(run, seq) deduplication across server processes, `stepline server migrate`, and its schema versions.
The query API over PostgreSQL is proven by test_api.py, which runs over both stores, and a server restarted
mid-run by test_remote.py, likewise."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import numpy as np
import psycopg
import pytest
import requests

import stepline
from stepline import Logbook
from stepline.errors import ConfigError
from stepline.server.auth import AuthStore
from stepline.server.stores.postgres import PostgresStore
from stepline.server.stores.postgres_schema import MIGRATIONS, upgrade
from tests.server.conftest import POSTGRES_ADMIN, database_url

pytestmark = pytest.mark.postgres


def api(url, path, **params):
    response = requests.get(f"{url}/api/v1/projects/{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_run_pushed_live_lands_whole_in_postgresql(server, database, tmp_path, logdir):
    process = server("--store", database, root=tmp_path / "auth")
    run = stepline.init(project="p", name="pushed", dir=logdir, backend=process.url, config={"lr": 0.1},
                        tags=["remote"])
    for step in range(2000):
        run.log({"loss": 1 / (step + 1), "nan": math.nan if step == 3 else 0.0}, step=step, epoch=step / 1000)
    run.info("hello", epoch=1)
    run.files.save(os.urandom(3 << 20), "weights.bin")  # three 1 MiB rows and a bit
    run.summary.update(best=0.5)
    assert run.finish(timeout=60)
    remote = api(process.url, f"p/runs/{run.id}")
    assert remote["status"] == "finished" and remote["name"] == "pushed" and remote["tags"] == ["remote"]
    assert remote["params"] == {"lr": 0.1} and remote["summary"] == {"best": 0.5} and remote["steps"] == 2000
    local = Logbook(logdir).run(run.id)
    loss = api(process.url, f"p/runs/{run.id}/series", keys="loss,nan", raw="true", x="epoch")["series"]
    assert loss[0]["x"] == [step / 1000 for step in range(2000)]
    assert loss[0]["y"] == local.series("loss").values and loss[0]["step"] == list(range(2000))
    assert loss[1]["y"][3] == "NaN" and loss[1]["count"] == 2000
    assert [line["message"] for line in api(process.url, f"p/runs/{run.id}/logs")["logs"]] == ["hello"]
    blob = requests.get(f"{process.url}/api/v1/projects/p/runs/{run.id}/files/weights.bin", timeout=30)
    assert blob.content == (local.path / "files/weights.bin").read_bytes()
    assert not any((tmp_path / "auth").glob("p/*")), "with --store, the folder holds no runs"


def test_the_same_batch_sent_to_two_server_processes_at_once_is_stored_once(server, database, tmp_path):
    servers = [server("--store", database, root=tmp_path / "auth") for _ in range(2)]
    requests.put(f"{servers[0].url}/api/v1/projects/p/runs/r1", json={"meta": {"name": "twice"}}, timeout=10)
    batch = {"events": [{"type": "metrics", "seq": seq, "time": 1.0, "step": seq, "values": {"x": seq}}
                        for seq in range(1, 5001)]}
    answers = []

    def send(url):
        for _ in range(3):
            answers.append(requests.post(f"{url}/api/v1/projects/p/runs/r1/events", json=batch, timeout=60).json())

    threads = [threading.Thread(target=send, args=(s.url,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a["accepted"] for a in answers) == 5000 and sum(a["duplicates"] for a in answers) == 25000
    series = api(servers[1].url, "p/runs/r1/series", keys="x", raw="true")["series"][0]
    assert series["x"] == list(range(1, 5001))
    with psycopg.connect(database) as db:
        assert db.execute("SELECT sum(n) FROM point_chunks").fetchone()[0] == 5000


def admin(*args, input=None, check=True):
    """``stepline server ARGS`` in a process of its own, as an administrator would run it."""
    result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", *args], input=input,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 or not check, result.stderr
    return result


def migrate(*args):
    return admin("migrate", *args, check=False)


def test_users_and_tokens_live_in_postgresql_so_every_server_process_sees_a_revocation(server, database, tmp_path):
    refused = subprocess.run([sys.executable, "-m", "stepline.cli.main", "serve", "--store", database,
                              "--require-token", "--port", "9"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and f"token create --user NAME --store {database}" in refused.stderr
    admin("user", "add", "ana", "--store", database)
    token = admin("token", "create", "--user", "ana", "--project", "vision", "--store", database).stdout.strip()
    [listed] = admin("token", "list", "--store", database).stdout.splitlines()
    assert listed.split() == [token[4:12], "ana", "vision"]
    servers = [server("--store", database, "--require-token", root=tmp_path / "empty") for _ in range(2)]
    signed = {"Authorization": f"Bearer {token}"}
    for process in servers:
        assert requests.get(f"{process.url}/api/v1/projects", timeout=10).status_code == 401
        assert requests.put(f"{process.url}/api/v1/projects/vision/runs/r1", json={"meta": {}}, headers=signed,
                            timeout=10).status_code == 200
        assert requests.put(f"{process.url}/api/v1/projects/other/runs/r1", json={"meta": {}}, headers=signed,
                            timeout=10).status_code == 403
    admin("token", "revoke", token[4:12], "--store", database)
    for process in servers:  # no restart, no cache: the next request is refused
        assert requests.get(f"{process.url}/api/v1/projects", headers=signed, timeout=10).status_code == 401
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").rglob("auth.json"))
    with psycopg.connect(database) as db:
        assert db.execute("SELECT name FROM users").fetchall() == [("ana",)]
        assert db.execute("SELECT count(*) FROM tokens").fetchone()[0] == 0


def test_migrate_moves_a_logbook_into_postgresql_and_a_second_run_adds_nothing(database, logdir):
    for i in range(3):
        run = stepline.init(project="vision" if i < 2 else "nlp", name=f"r{i}", dir=logdir, config={"i": i})
        for step in range(1500):
            run.log({"loss": 1 / (step + 1), "acc": step / 1500}, step=step)
        run.warning("slow", step=3)
        run.files.save({"i": i}, "result.json")
        run.finish() if i else run.fail("diverged")
    admin("user", "add", "ana", "--password-stdin", "--dir", str(logdir), input="pw\n")
    token = admin("token", "create", "--user", "ana", "--dir", str(logdir)).stdout.strip()
    result = migrate("--from", str(logdir), "--to", database)
    assert result.returncode == 0, result.stderr
    # per run: 1,500 metric records, one params record, one log line
    assert "100%" in result.stderr and "4,506/4,506 records" in result.stderr and "3/3 runs" in result.stderr
    assert "4,506 records, 3 files, 1 users and 1 tokens added" in result.stderr
    store = PostgresStore(database)
    try:
        for view in Logbook(logdir).runs():
            moved = store.run(view.project, view.id)
            assert moved["status"] == view.status and moved["params"] == view.params() and moved["steps"] == 1500
            [loss] = store.series(view.project, view.id, ["loss"], "step", None, 0)
            assert loss.y.tolist() == view.series("loss").values
            assert store.logs(view.project, view.id, None, 0, 10)[1][0]["message"] == "slow"
            assert b"".join(store.read_file(view.project, view.id, "result.json")[1]) == \
                (view.path / "files/result.json").read_bytes()
        assert {p["name"]: p["runs"] for p in store.projects()} == {"nlp": 1, "vision": 2}
        auth = AuthStore(store.accounts())  # the hashes moved: the token and the password work as before
        assert auth.verify(token).user == "ana" and auth.check_password("ana", "pw")
        assert not auth.check_password("ana", "wrong")
    finally:
        store.close()
    again = migrate("--from", str(logdir), "--to", database)
    assert again.returncode == 0 and "0 records, 0 files, 0 users and 0 tokens added" in again.stderr
    with psycopg.connect(database) as db:
        assert db.execute("SELECT sum(n) FROM point_chunks").fetchone()[0] == 3 * 1500 * 2


def test_migrate_names_what_is_wrong(logdir, database):
    assert "no such logbook folder" in migrate("--from", str(logdir / "nope"), "--to", database).stderr
    refused = migrate("--from", str(logdir.parent), "--to", "postgresql://someone:secret@127.0.0.1:1/x")
    assert refused.returncode == 1 and "cannot open the PostgreSQL store" in refused.stderr
    assert "secret" not in refused.stderr


@pytest.fixture
def blank_database(postgres_url):
    name = f"{postgres_url.rsplit('/', 1)[1].split('?')[0]}_blank"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield database_url(name)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_database_of_the_first_schema_is_upgraded_and_keeps_its_runs(blank_database):
    with psycopg.connect(blank_database, autocommit=True) as db:  # the database the first schema made, a run in it
        assert upgrade(db, MIGRATIONS[:1]) == 1
        db.execute("INSERT INTO projects VALUES ('old', 1.0)")
        run = db.execute("""INSERT INTO runs (project, id, meta, metric_records)
                            VALUES ('old', 'r1', '{"name": "r1"}', 1) RETURNING pk""").fetchone()[0]
        series = db.execute("INSERT INTO series (run, key, position, count, nan_count, last, last_step) "
                            "VALUES (%s, 'loss', 0, 1, 0, 0.5, 1) RETURNING pk", (run,)).fetchone()[0]
        db.execute("INSERT INTO points VALUES (%s, 0, 1, 1, 0.5, 10.0, 'NaN')", (series,))
    store = PostgresStore(blank_database)
    try:
        assert store.schema_version == MIGRATIONS[-1][0] > 1
        assert store.run("old", "r1")["metrics"]["loss"]["last"] == 0.5
        [loss] = store.series("old", "r1", ["loss"], "time", None, 0)
        assert (loss.x.tolist(), loss.y.tolist(), loss.step.tolist()) == ([10.0], [0.5], [1.0])
        AuthStore(store.accounts()).add_user("ana")
        assert AuthStore(store.accounts()).users() == ["ana"]
    finally:
        store.close()


def test_the_schema_is_created_upgraded_once_and_a_newer_one_refused(blank_database):
    store = PostgresStore(blank_database)
    store.close()
    assert store.schema_version == MIGRATIONS[-1][0]
    newer = [*MIGRATIONS, (MIGRATIONS[-1][0] + 1, "ALTER TABLE runs ADD COLUMN note text;")]
    with psycopg.connect(blank_database) as db:
        assert upgrade(db, newer) == newer[-1][0]
        assert upgrade(db, newer) == newer[-1][0]  # applied once: a second ADD COLUMN would fail
        versions = [v for (v,) in db.execute("SELECT version FROM stepline_schema ORDER BY version")]
        assert versions == [v for v, _ in newer]
    with pytest.raises(ConfigError, match="newer stepline"):
        PostgresStore(blank_database)


def test_lmtracker_and_trackio_clients_log_into_postgresql(server, database, tmp_path):
    import uuid

    auth = tmp_path / "empty"
    admin("user", "add", "ana", "--password-stdin", "--store", database, input="pw\n")
    first = server("--store", database, root=auth)
    lmtracker, headers = f"{first.url}/api", {"Authorization": "ana:pw"}
    assert requests.post(f"{lmtracker}/create-project", json={"name": "lm"}, headers=headers, timeout=10).ok
    for step in (10, 20, 30):
        pushed = requests.post(f"{lmtracker}/push-metrics", headers=headers, timeout=10, json={
            "project_name": "lm", "run_name": "r", "metrics": {"loss": 1 / step, "step": step}})
        assert pushed.json() == {"ok": True}
    wrong = requests.post(f"{lmtracker}/push-metrics", headers=headers, timeout=10, json={
        "project_name": "lm", "run_name": "r", "metrics": {"loss": "high"}})
    assert wrong.json() == {"ok": False, "message": "Invalid schema"}  # a key that held numbers gets text
    other_keys = requests.post(f"{lmtracker}/push-metrics", headers=headers, timeout=10, json={
        "project_name": "lm", "run_name": "r", "metrics": {"acc": 0.5}, "step": 40})
    assert other_keys.json() == {"ok": True}  # stepline keeps it (docs/server.md)
    entry = {"project": "tp", "run": "t", "run_id": None, "metrics": {"x": 1.0}, "step": None,
             "config": {"lr": 0.1}, "log_id": str(uuid.uuid4())}
    assert requests.post(f"{first.url}/api/bulk_log", json={"logs": [entry], "hf_token": None}, timeout=10).ok
    first.stop()
    # a restarted server reads the log ids back from PostgreSQL, so a batch sent again is stored once
    again = server("--store", database, root=auth, port=first.port)
    answer = requests.post(f"{again.url}/api/bulk_log", json={"logs": [entry], "hf_token": None}, timeout=10)
    assert answer.json() == {"data": {"stored": 0}}
    rows = requests.post(f"{lmtracker}/get-run", headers=headers, timeout=10,
                         json={"project_name": "lm", "run_name": "r"}).json()["metrics"]
    assert rows == [{"loss": 0.1, "step": 10}, {"loss": 0.05, "step": 20}, {"loss": 1 / 30, "step": 30},
                    {"acc": 0.5, "step": 40}]
    [lm_run] = api(again.url, "lm/runs")["runs"]
    assert lm_run["tags"] == ["lmtracker"] and lm_run["metrics"]["loss"]["last_step"] == 30
    [trackio_run] = api(again.url, "tp/runs")["runs"]
    assert trackio_run["params"] == {"lr": 0.1} and trackio_run["metrics"]["x"]["count"] == 1
    assert requests.post(f"{lmtracker}/delete-run", headers=headers, timeout=10,
                         json={"project_name": "lm", "run_name": "r"}).json() == {"ok": True}
    assert api(again.url, "lm/runs")["runs"] == []


def test_lmtracker_and_trackio_clients_alternating_between_two_server_processes_lose_nothing(server, database,
                                                                                             tmp_path):
    """A load balancer sends each request to either process: each numbers its records from the database."""
    import uuid

    admin("user", "add", "ana", "--password-stdin", "--store", database, input="pw\n")
    pair = [server("--store", database, root=tmp_path / "empty") for _ in range(2)]
    headers = {"Authorization": "ana:pw"}
    assert requests.post(f"{pair[0].url}/api/create-project", json={"name": "lm"}, headers=headers, timeout=10).ok
    for push in range(6):
        answer = requests.post(f"{pair[push % 2].url}/api/push-metrics", headers=headers, timeout=10, json={
            "project_name": "lm", "run_name": "r", "metrics": {"loss": 1 / (push + 1)}})
        assert answer.json() == {"ok": True}
    rows = requests.post(f"{pair[1].url}/api/get-run", headers=headers, timeout=10,
                         json={"project_name": "lm", "run_name": "r"}).json()["metrics"]
    assert rows == [{"loss": 1 / (push + 1)} for push in range(6)]
    [lm_run] = api(pair[0].url, "lm/runs")["runs"]
    assert api(pair[0].url, f"lm/runs/{lm_run['id']}/series", keys="loss", raw="true")["series"][0]["x"] == [
        0, 1, 2, 3, 4, 5]
    wrong = requests.get(f"{pair[0].url}/api/check-user", headers={"Authorization": "ana:nope"}, timeout=10)
    assert wrong.status_code == 401  # a remembered right password lets no other through

    entries = [{"project": "tp", "run": "t", "run_id": None, "metrics": {"x": float(i)}, "step": None,
                "config": {"lr": 0.1}, "log_id": str(uuid.uuid4())} for i in range(6)]
    for i, entry in enumerate(entries):
        answer = requests.post(f"{pair[i % 2].url}/api/bulk_log", json={"logs": [entry], "hf_token": None},
                               timeout=10)
        assert answer.json() == {"data": {"stored": 2 if i == 0 else 1}}  # the config comes with the first
    again = requests.post(f"{pair[0].url}/api/bulk_log", json={"logs": entries[3:], "hf_token": None}, timeout=10)
    assert again.json() == {"data": {"stored": 0}}  # sent to the other process first: still stored once
    [trackio_run] = api(pair[1].url, "tp/runs")["runs"]
    assert trackio_run["params"] == {"lr": 0.1}
    series = api(pair[1].url, f"tp/runs/{trackio_run['id']}/series", keys="x", raw="true")["series"][0]
    assert series["x"] == [0, 1, 2, 3, 4, 5] and series["y"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_chunks_and_the_metric_summary_hold_every_point_across_uneven_batches(database):
    """Batches of any size, one over a chunk's 65,536 points, with ties, NaN and infinities: the summary is
    what a point-by-point reading gives, and the points read back whole, and from any place."""
    import random

    from stepline.logbook.metric_summary import MetricSummary
    from stepline.server.stores.postgres_points import MAX_CHUNK

    rng = random.Random(7)
    sizes = [1, 63, 2, 100, MAX_CHUNK + 5, 1, 333]
    values = [rng.choice([0.0, 1.0, 2.0, math.nan, math.inf, -math.inf, rng.random()]) for _ in range(sum(sizes))]
    values[-1] = 0.25  # a last value that compares equal
    store = PostgresStore(database)
    try:
        writer = store.open("p", "r", {"name": "chunks"})
        seq = 0
        for size in sizes:
            writer.append([{"type": "metrics", "seq": seq + k + 1, "time": 1.0 + seq + k, "step": 10 * (seq + k),
                            "values": {"v": values[seq + k]}} for k in range(size)])
            seq += size
        expected = MetricSummary()
        for i, value in enumerate(values):
            expected.add(10 * i, value)
        assert store.run("p", "r")["metrics"]["v"] == expected.as_dict()
        for after in (0, 1, 64, 166, MAX_CHUNK, MAX_CHUNK + 170, len(values) - 1, len(values)):
            [found] = store.series("p", "r", ["v"], "time", None, after)
            assert found.step.tolist() == [10 * i for i in range(after, len(values))]
            assert found.x.tolist() == [1.0 + i for i in range(after, len(values))]
            assert np.array_equal(found.y, np.array(values[after:]), equal_nan=True)
        with psycopg.connect(database) as db:
            assert db.execute("SELECT array_agg(n ORDER BY first_i) FROM point_chunks").fetchone()[0] == [
                1, 63, 2, 100, MAX_CHUNK, 5, 1, 333]
    finally:
        store.close()


def test_a_database_of_schema_2_keeps_its_points_in_chunks(blank_database):
    """The upgrade from a row a point (schema 2) to chunks, in SQL: every point read back as it was stored."""
    database = blank_database
    with psycopg.connect(database, autocommit=True) as db:
        assert upgrade(db, MIGRATIONS[:2]) == 2
        db.execute("INSERT INTO projects VALUES ('p', 1.0)")
        run = db.execute("INSERT INTO runs (project, id, meta) VALUES ('p', 'r', '{\"name\": \"old\"}') "
                         "RETURNING pk").fetchone()[0]
        for position, key in enumerate(("a", "b")):
            series = db.execute("INSERT INTO series (run, key, position, count) VALUES (%s, %s, %s, 70000) "
                                "RETURNING pk", (run, key, position)).fetchone()[0]
            db.execute("INSERT INTO points SELECT %s, i, i + 1, 2 * i, CASE WHEN i = 5 THEN 'NaN' ELSE i * %s END, "
                       "i + 0.5, 'NaN' FROM generate_series(0, 69999) i", (series, position + 1.0))
    store = PostgresStore(database)
    try:
        assert store.schema_version == MIGRATIONS[-1][0]
        [a, b] = store.series("p", "r", ["a", "b"], "step", None, 0)
        assert a.step.tolist() == [2 * i for i in range(70000)] and b.x.tolist() == a.step.tolist()
        assert math.isnan(a.y[5]) and a.y[6] == 6.0 and b.y[69999] == 2 * 69999.0
        [late] = store.series("p", "r", ["b"], "epoch", None, 69990)
        assert late.count == 70000 and len(late.y) == 10 and np.isnan(late.x).all()
        rows = store.metric_rows("p", "r")
        assert len(rows) == 70000 and rows[7] == (14, {"a": 7.0, "b": 14.0})
    finally:
        store.close()


def test_a_run_deleted_through_one_server_process_is_made_anew_when_pushed_to_another(server, database, tmp_path):
    first, second = (server("--store", database, root=tmp_path / "empty") for _ in range(2))
    run = f"{first.url}/api/v1/projects/p/runs/r1"
    points = [{"type": "metrics", "seq": seq, "time": 1.0, "step": seq, "values": {"x": seq}} for seq in (1, 2)]
    assert requests.put(run, json={"meta": {"name": "again"}}, timeout=10).status_code == 200
    assert requests.post(f"{run}/events", json={"events": points[:1]}, timeout=10).json()["accepted"] == 1
    gone = requests.delete(f"{second.url}/api/v1/projects/p/runs/r1", params={"force": "true"}, timeout=10)
    assert gone.json() == {"deleted": "r1"}
    assert requests.put(run, json={"meta": {"name": "again"}}, timeout=10).status_code == 200  # not a stale row
    assert requests.post(f"{run}/events", json={"events": points}, timeout=10).json()["accepted"] == 2
    assert api(second.url, "p/runs/r1/series", keys="x", raw="true")["series"][0]["x"] == [1, 2]


def test_both_stores_downsample_to_the_same_points(database, logdir):
    """One definition of the buckets (downsample.py): for the same points, every query, raw or downsampled,
    after a cursor, over step, epoch or time, answers the same from a logbook folder and from PostgreSQL."""
    import numpy as np

    from stepline.server.migrate import migrate
    from stepline.server.stores import LogbookStore

    rng = np.random.default_rng(7)
    runs = {}
    shapes = (("small", 3000, ()), ("nan", 10_000, (17, 5_000, 9_999)), ("long", 100_000, (70_000,)))
    for name, size, nan_at in shapes:
        values = rng.normal(size=size)
        values[rng.integers(0, size, 5)] = 50.0  # spikes that must survive
        for place in nan_at:
            values[place] = math.nan
        run = stepline.init(project="ds", name=name, dir=logdir)
        for step, value in enumerate(values.tolist()):
            run.log({"v": value}, step=step, epoch=step / 1000)
        run.finish()
        runs[name] = (run.id, size)
    folder, database_store = LogbookStore(logdir), PostgresStore(database)
    try:
        migrate(logdir, database_store)
        compared = 0
        for name, (run_id, size) in runs.items():
            for points in (64, 1000, None):
                for after in (0, 128, 1000, size - 500):
                    for x in ("step", "epoch", "time"):
                        [a] = folder.series("ds", run_id, ["v"], x, points, after)
                        [b] = database_store.series("ds", run_id, ["v"], x, points, after)
                        where = (name, points, after, x)
                        assert (a.count, a.downsampled) == (b.count, b.downsampled), where
                        assert a.step.tolist() == b.step.tolist(), where
                        assert np.array_equal(a.y, b.y, equal_nan=True) and np.allclose(a.x, b.x, equal_nan=True), where
                        compared += 1
        assert compared == 3 * 3 * 4 * 3
        [first] = folder.series("ds", runs["small"][0], ["v"], "step", 64, 0)
        assert first.downsampled and len(first.step) <= 64
    finally:
        folder.close()
        database_store.close()


def test_points_of_a_mixed_batch_land_in_logged_order_even_for_keys_stored_as_one(database):
    """A batch whose records log different keys, and two keys PostgreSQL stores as one text (NUL is kept as
    U+2400): every point lands once, in logged order, with its record's step, time and epoch."""
    store = PostgresStore(database)
    try:
        writer = store.open("p", "r", {"name": "mixed"})
        records = [{"type": "metrics", "seq": 1, "time": 10.0, "step": 0, "values": {"a\0": 1.0}},
                   {"type": "metrics", "seq": 2, "time": 11.0, "step": 1, "epoch": 0.5, "values": {"a\u2400": 2.0}},
                   {"type": "metrics", "seq": 3, "time": 12.0, "step": 2, "values": {"a\0": 3.0, "b": True}},
                   {"type": "metrics", "seq": 4, "time": 13.0, "step": 3, "values": {"b": math.nan}}]
        assert writer.append(records) == (4, 0)
        a, b = store.series("p", "r", ["a\u2400", "b"], "step", None, 0)
        assert a.step.tolist() == [0, 1, 2] and a.y.tolist() == [1.0, 2.0, 3.0]
        assert b.step.tolist() == [2, 3] and b.y[0] == 1.0 and math.isnan(b.y[1])
        epochs = store.series("p", "r", ["a\u2400"], "epoch", None, 0)[0].x.tolist()
        times = store.series("p", "r", ["a\u2400"], "time", None, 0)[0].x.tolist()
        assert math.isnan(epochs[0]) and epochs[1] == 0.5 and times == [10.0, 11.0, 12.0]
        assert store.run("p", "r")["metrics"]["b"]["count"] == 2
    finally:
        store.close()


def test_a_database_of_schema_3_keeps_every_point_with_its_record_s_fields(blank_database):
    """The upgrade to record chunks (schema 4), in SQL, over two runs: each point finds its record by seq (seqs
    with gaps, a metric logged every 7th record, records over a chunk's length), and new records go on after."""
    from stepline.server.stores.postgres_points import MAX_CHUNK

    n = MAX_CHUNK + 4_000
    i = np.arange(n)
    seqs, steps, times = 2 * i + 3, 10 * i, 0.5 + i
    epochs = np.where(i % 2 == 1, np.nan, i / 100)
    sparse = i[i % 7 == 0]
    with psycopg.connect(blank_database, autocommit=True) as db:
        assert upgrade(db, MIGRATIONS[:3]) == 3
        db.execute("INSERT INTO projects VALUES ('p', 1.0)")
        for run_id, size in (("r", n), ("small", 10)):
            run = db.execute("INSERT INTO runs (project, id, meta, metric_records) VALUES ('p', %s, '{}', %s) "
                             "RETURNING pk", (run_id, size)).fetchone()[0]
            for position, (key, where) in enumerate((("loss", i[:size]), ("eval", sparse[sparse < size]))):
                series = db.execute("INSERT INTO series (run, key, position, count) VALUES (%s, %s, %s, %s) "
                                    "RETURNING pk", (run, key, position, len(where))).fetchone()[0]
                for first in range(0, len(where), MAX_CHUNK):
                    part = where[first:first + MAX_CHUNK]
                    db.execute("INSERT INTO chunks VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", (
                        series, first, len(part), seqs[part].astype(">i8").tobytes(),
                        steps[part].astype(">i8").tobytes(), (part * (position + 1.5)).astype(">f8").tobytes(),
                        times[part].astype(">f8").tobytes(), epochs[part].astype(">f8").tobytes()))
    store = PostgresStore(blank_database)
    try:
        assert store.schema_version == 4
        for after in (0, 5, 9_400):
            [loss, evals] = store.series("p", "r", ["loss", "eval"], "epoch", None, after)
            late = sparse[after:]
            assert evals.y.tolist() == (late * 2.5).tolist() and evals.step.tolist() == steps[late].tolist()
            assert np.array_equal(evals.x, epochs[late], equal_nan=True)
            assert loss.y.tolist() == (i[after:] * 1.5).tolist()
        [by_time] = store.series("p", "r", ["eval"], "time", None, 0)
        assert by_time.x.tolist() == times[sparse].tolist()
        rows = store.metric_rows("p", "small")
        assert rows == [(10 * k, {"loss": 1.5 * k, **({"eval": 2.5 * k} if k % 7 == 0 else {})}) for k in range(10)]
        writer = store.writer("p", "r")  # numbered on from the records the upgrade counted
        assert writer.append([{"type": "metrics", "seq": int(seqs[-1]) + 1, "time": 1e9, "step": -1,
                               "values": {"eval": 7.0}}]) == (1, 0)
        [evals] = store.series("p", "r", ["eval"], "time", None, len(sparse) - 1)
        assert evals.x.tolist() == [times[sparse[-1]], 1e9] and evals.step.tolist() == [steps[sparse[-1]], -1]
        with psycopg.connect(blank_database) as db:
            assert db.execute("SELECT metric_records FROM runs ORDER BY pk").fetchall() == [(n + 1,), (10,)]
    finally:
        store.close()
