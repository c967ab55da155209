"""Pushing to a real `stepline serve` on loopback: outages, kills, bad tokens, bad payloads, two clients."""

from __future__ import annotations

import gzip
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest
import requests

import stepline
from stepline import Logbook
from tests.conftest import start_python, wait_until


@pytest.fixture
def serverdir(tmp_path):
    return tmp_path / "server-logbook"


def remote_series(url, project, run_id, key):
    body = requests.get(f"{url}/api/v1/projects/{project}/runs/{run_id}/series",
                        params={"keys": key, "raw": "true"}, timeout=10).json()
    return body["series"][0]


def sync(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_a_run_pushed_live_lands_whole_on_the_server(server, serverdir, logdir):
    process = server(root=serverdir)
    run = stepline.init(project="p", name="pushed", dir=logdir, backend=process.url, config={"lr": 0.1},
                        tags=["remote"])
    for step in range(2000):
        run.log({"loss": 1 / (step + 1), "nan": float("nan") if step == 3 else 0.0}, step=step, epoch=step / 1000)
    run.info("hello", epoch=1)
    run.files.save({"acc": 0.9}, "results.json")
    run.summary.update(best=0.5)
    assert run.finish(timeout=30)
    remote = Logbook(serverdir).run(run.id)
    local = Logbook(logdir).run(run.id)
    assert remote.status == "finished" and remote.name == "pushed" and remote.tags == ["remote"]
    remote_rows, local_rows = remote.metrics(), local.metrics()
    assert len(remote_rows) == len(local_rows) == 2000
    assert [str(row) for row in remote_rows] == [str(row) for row in local_rows]  # str: NaN equals NaN there
    assert remote.params() == {"lr": 0.1} and remote.summary == {"best": 0.5}
    assert [line["message"] for line in remote.logs()] == ["hello"]
    assert (remote.path / "files/results.json").read_bytes() == (local.path / "files/results.json").read_bytes()
    # and the server's API shows it like a local run
    assert remote_series(process.url, "p", run.id, "loss")["count"] == 2000


def test_a_point_reaches_the_server_while_the_run_is_live(server, serverdir, logdir):
    process = server(root=serverdir)
    run = stepline.init(project="p", dir=logdir, backend=process.url)
    run.log({"x": 1.0})
    series = f"{process.url}/api/v1/projects/p/runs/{run.id}/series?keys=x"
    wait_until(lambda: requests.get(series, timeout=10).status_code == 200, 60, "the point on the server")
    assert remote_series(process.url, "p", run.id, "x")["y"] == [1.0]
    assert run.status == "running"
    run.finish()


@pytest.mark.slow
def test_server_stopped_mid_run_and_restarted_gets_every_point_exactly_once(store_args, server, serverdir, logdir):
    first = server(*store_args, root=serverdir)
    writer = start_python(f"""
        import time, warnings, stepline
        run = stepline.init(project="p", dir={str(logdir)!r}, backend={first.url!r})
        print(run.id, flush=True)
        for step in range(3000):
            run.log({{"v": step}}, step=step)
            time.sleep(0.001)
        print("finished", run.finish(timeout=60), flush=True)
    """)
    run_id = writer.stdout.readline().strip()
    series = f"{first.url}/api/v1/projects/p/runs/{run_id}/series?keys=v"
    wait_until(lambda: requests.get(series, timeout=10).status_code == 200, 120, "the first points on the server")
    first.stop()  # the server goes away mid-run ...
    time.sleep(2.0)  # ... for two seconds of training ...
    server(*store_args, root=serverdir, port=first.port)  # ... and comes back on the same address
    out, err = writer.communicate(timeout=120)
    assert "finished True" in out, err
    assert "cannot reach" in err  # one clear warning while it was away
    series = remote_series(first.url, "p", run_id, "v")
    assert series["x"] == list(range(3000)) and series["y"] == list(range(3000))
    status = requests.get(f"{first.url}/api/v1/projects/p/runs/{run_id}", timeout=10).json()["status"]
    assert status == "finished"


@pytest.mark.slow
def test_a_client_killed_mid_upload_is_completed_by_sync_and_a_second_sync_sends_nothing(store_args, server,
                                                                                         serverdir, logdir):
    process = server(*store_args, root=serverdir)
    writer = start_python(f"""
        import time, stepline
        run = stepline.init(project="p", name="killed", dir={str(logdir)!r}, backend={process.url!r})
        run.files.save(b"x" * 100_000, "blob.bin")
        print(run.id, flush=True)
        step = 0
        while True:
            run.log({{"v": step}}, step=step)
            step += 1
            if step % 100 == 0:
                time.sleep(0.001)
    """)
    run_id = writer.stdout.readline().strip()
    time.sleep(1.5)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    local = Logbook(logdir).run(run_id).series("v")
    result = sync(run_id, "--remote", process.url, "--dir", str(logdir))
    assert result.returncode == 0, result.stderr
    assert "1 of 1 runs synced" in result.stdout
    remote = remote_series(process.url, "p", run_id, "v")
    assert remote["x"] == local.steps and remote["count"] == len(local)
    files = requests.get(f"{process.url}/api/v1/projects/p/runs/{run_id}/files", timeout=10).json()["files"]
    assert files == [{"path": "blob.bin", "size": 100_000}]
    again = sync("--all", "--remote", process.url, "--dir", str(logdir))
    assert "0 records and 0 files sent" in again.stderr


def test_offline_runs_are_synced_later(server, serverdir, logdir):
    offline = stepline.init(project="p", name="offline", dir=logdir, config={"a": 1})
    offline.log({"x": 1.0})
    offline.finish()
    process = server(root=serverdir)
    result = sync("offline", "--remote", process.url, "--dir", str(logdir))
    assert result.returncode == 0 and "2 records and 0 files sent" in result.stderr  # a params and a metrics record
    remote = Logbook(serverdir).run(offline.id)
    assert remote.status == "finished" and remote.params() == {"a": 1} and remote.series("x").values == [1.0]


def test_finish_with_the_server_down_says_what_is_unsent_and_how_to_send_it(logdir):
    from tests.server.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.warns(stepline.SteplineWarning) as caught:
        run = stepline.init(project="p", dir=logdir, backend=url)
        run.log({"x": 1.0})
        time.sleep(1.0)
        assert run.finish(timeout=1.5) is False
    messages = " ".join(str(w.message) for w in caught)
    assert "cannot reach" in messages and f"stepline sync {run.id} --remote {url}" in messages
    assert f"1 records or files of run {run.id}" in messages
    assert Logbook(logdir).run(run.id).series("x").values == [1.0]  # the local copy has it all


def test_a_bad_token_gives_one_clear_error_no_retries_and_the_local_copy_keeps_everything(server, serverdir, logdir):
    admin = [sys.executable, "-m", "stepline.cli.main", "server"]
    subprocess.run([*admin, "user", "add", "ana", "--dir", str(serverdir)], check=True, capture_output=True)
    created = subprocess.run([*admin, "token", "create", "--user", "ana", "--dir", str(serverdir)], check=True,
                             capture_output=True, text=True)
    [token] = re.findall(r"stl_\S+", created.stdout)
    process = server("--require-token", root=serverdir)
    with pytest.warns(stepline.SteplineWarning) as caught:
        run = stepline.init(project="p", dir=logdir, backend=process.url, token="stl_0000_wrong")
        for step in range(100):
            run.log({"x": step}, step=step)
        time.sleep(1.5)  # several shipping rounds' worth of time
        run.finish(timeout=5)
    [refusal] = [str(w.message) for w in caught if "answered 401" in str(w.message)]
    assert "token= to stepline.init, or set STEPLINE_TOKEN" in refusal and "Bearer" not in refusal
    assert not (serverdir / "p").exists()
    assert Logbook(logdir).run(run.id).series("x").steps == list(range(100))
    # The command the warning gives, with the token filled in, sends the run.
    command = re.search(r"Send them with: (stepline sync .*)$", " ".join(str(w.message) for w in caught)).group(1)
    assert "--token <your token>" in command and f"--dir {logdir}" in command
    result = sync(*command.replace("<your token>", token).split()[2:])
    assert result.returncode == 0 and "1 of 1 runs synced" in result.stdout, result.stderr
    assert Logbook(serverdir).run(run.id).series("x").steps == list(range(100))


def test_finish_says_at_once_that_it_waits_and_warnings_point_at_the_user_s_lines(logdir, monkeypatch):
    from tests.server.conftest import free_port

    monkeypatch.setenv("STEPLINE_REMOTE_TIMEOUT", "3")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.warns(stepline.SteplineWarning) as caught:
        run = stepline.init(project="p", dir=logdir, backend=url)
        run.log({"x": 1.0})
        wait_until(lambda: any("cannot reach" in str(w.message) for w in caught), 30)  # the backend is away
        run.finish()
    waiting = [w for w in caught if "waiting up to 3 s for" in str(w.message)]
    assert len(waiting) == 1 and "complete in the local logbook" in str(waiting[0].message)
    assert f"stepline sync {run.id} --remote {url}" in str(waiting[0].message)
    ours = [w for w in caught if issubclass(w.category, stepline.SteplineWarning)]
    assert all(w.filename == __file__ for w in ours), [(w.filename, str(w.message)[:40]) for w in ours]


def test_tokens_limit_projects_and_can_be_revoked(server, serverdir, logdir):
    admin = [sys.executable, "-m", "stepline.cli.main", "server"]
    subprocess.run([*admin, "user", "add", "ana", "--dir", str(serverdir)], check=True, capture_output=True)
    made = subprocess.run([*admin, "token", "create", "--user", "ana", "--project", "vision", "--dir",
                           str(serverdir)], check=True, capture_output=True, text=True)
    token = made.stdout.strip()
    token_id = token.split("_")[1]
    assert token.startswith("stl_") and token not in (serverdir / ".stepline" / "auth.json").read_text()
    process = server("--require-token", root=serverdir)
    run = stepline.init(project="vision", dir=logdir, backend=process.url, token=token)
    run.log({"x": 1.0})
    assert run.finish(timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{process.url}/api/v1/projects", timeout=10).status_code == 401
    assert [p["name"] for p in requests.get(f"{process.url}/api/v1/projects", headers=headers,
                                            timeout=10).json()["projects"]] == ["vision"]
    other = requests.put(f"{process.url}/api/v1/projects/nlp/runs/abcd1234", json={"meta": {}}, headers=headers,
                         timeout=10)
    assert other.status_code == 403
    listed = subprocess.run([*admin, "token", "list", "--dir", str(serverdir)], capture_output=True, text=True)
    assert token_id in listed.stdout and token not in listed.stdout
    subprocess.run([*admin, "token", "revoke", token_id, "--dir", str(serverdir)], check=True, capture_output=True)
    assert requests.get(f"{process.url}/api/v1/projects", headers=headers, timeout=10).status_code == 401


def test_malformed_and_oversized_payloads_are_refused_and_nothing_of_the_batch_is_stored(store_args, server,
                                                                                          serverdir):
    process = server(*store_args, root=serverdir)
    base = f"{process.url}/api/v1/projects/p/runs/abcd1234"
    assert requests.put(base, json={"meta": {"name": "target"}}, timeout=10).status_code == 200
    good = {"type": "metrics", "seq": 1, "time": 1.0, "step": 0, "values": {"x": 1.0}}
    cases = [
        ({"events": [good, {**good, "seq": 2, "values": {"x": "high"}}]}, "values"),
        ({"events": [good, {**good, "seq": 0}]}, "seq"),
        ({"events": [{**good, "type": "telemetry"}]}, "type"),
        ({"events": [{k: v for k, v in good.items() if k != "step"}]}, "step"),
        ({"events": [{**good, "extra": 1}]}, "extra"),
        ({"records": []}, "events"),
    ]
    for body, field in cases:
        response = requests.post(f"{base}/events", json=body, timeout=10)
        assert response.status_code == 422, body
        assert field in orjson.dumps(response.json()["detail"]).decode(), (field, response.json())
    json_type = {"Content-Type": "application/json"}
    assert requests.post(f"{base}/events", data=b"{not json", headers=json_type, timeout=10).status_code == 422
    run = requests.get(f"{base}", timeout=10).json()
    assert run["steps"] == 0 and run["metrics"] == {}  # nothing of any bad batch
    huge = gzip.compress(b'{"events":[' + b" " * (70 << 20) + b"]}")
    bomb = requests.post(f"{base}/events", data=huge, headers={"Content-Encoding": "gzip", **json_type}, timeout=30)
    assert bomb.status_code == 413 and "once decompressed" in bomb.json()["detail"]
    assert requests.put(f"{process.url}/api/v1/projects/p/runs/..%2Fx", json={"meta": {}},
                        timeout=10).status_code in (400, 404)
    ok = requests.post(f"{base}/events", json={"events": [good, good]}, timeout=10).json()
    assert ok["accepted"] == 1 and ok["duplicates"] == 1


def test_two_clients_write_different_runs_at_once(store_args, server, serverdir, logdir):
    process = server(*store_args, root=serverdir)
    code = f"""
        import stepline
        run = stepline.init(project="p", dir={str(logdir)!r}, backend={process.url!r})
        print(run.id, flush=True)
        for step in range(5000):
            run.log({{"v": step, "w": -step}}, step=step)
        assert run.finish(timeout=60)
    """
    writers = [start_python(code) for _ in range(2)]
    ids = [w.stdout.readline().strip() for w in writers]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    for run_id in ids:
        series = remote_series(process.url, "p", run_id, "w")
        assert series["y"] == [-s for s in range(5000)]


def test_an_events_body_over_the_limit_is_refused_before_it_is_read(server, serverdir):
    process = server(root=serverdir)
    base = f"{process.url}/api/v1/projects/p/runs/abcd1234"
    requests.put(base, json={"meta": {}}, timeout=10)
    response = requests.post(f"{base}/events", data=b" " * (65 << 20), timeout=30)
    assert response.status_code == 413 and "bytes" in response.json()["detail"]


def test_finish_without_a_timeout_never_hangs_on_a_dead_server(logdir, monkeypatch):
    from tests.server.conftest import free_port

    monkeypatch.setenv("STEPLINE_REMOTE_TIMEOUT", "1")
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.warns(stepline.SteplineWarning, match="stepline sync"):
        run = stepline.init(project="p", dir=logdir, backend=url)
        run.log({"x": 1.0})
        assert run.finish() is False
    assert time.monotonic() - started < 10
    assert Logbook(logdir).run(run.id).status == "finished"
