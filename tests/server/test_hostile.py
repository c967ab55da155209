"""Requests a careless or hostile client sends: refused with a clear 4xx, and never a listing broken for
everyone else. Over both stores where the store is what is tested."""

from __future__ import annotations

import json
import socket
import threading
import time

import requests

import stepline
from stepline import Logbook
from stepline.logbook import layout

RUN = "/api/v1/projects/p/runs/r1"
EVENTS = {"events": [{"type": "metrics", "seq": 1, "time": 1.0, "step": 0, "values": {"x": 1.0}}]}


def test_a_poisoned_meta_is_refused_and_the_listings_stay_up(served):
    client = served.client
    for meta, field in (({"heartbeat_at": "yesterday"}, "heartbeat_at"), ({"pid": 2**64}, "64 bits"),
                        ({"started_at": -5}, "started_at"), ({"tags": "one"}, "tags"), ({"status": "great"}, "status"),
                        ({"notes": "bad\udc80"}, "Unicode")):
        answer = client.put(RUN, content=json.dumps({"meta": {"name": "r1", **meta}}).encode(),  # \udc80 escaped
                            headers={"Content-Type": "application/json"})
        assert answer.status_code == 422 and field in answer.text, (meta, answer.text)
    assert client.put(RUN, json={"meta": {"name": "r1", "heartbeat_at": 1.7e9}}).status_code == 200
    assert client.post(f"{RUN}/events", json=EVENTS).status_code == 200
    assert client.get("/api/v1/projects").status_code == 200
    assert [r["name"] for r in client.get("/api/v1/projects/p/runs").json()["runs"]] == ["r1"]


def test_a_bad_field_in_one_run_s_meta_json_does_not_fail_the_list(logdir):
    from fastapi.testclient import TestClient

    from stepline.server.app import create_app
    from stepline.server.stores import LogbookStore

    good = stepline.init(project="p", name="good", dir=logdir)
    good.finish()
    bad = stepline.init(project="p", name="bad", dir=logdir)
    bad.finish()
    meta = layout.read_meta(bad.path)
    layout.write_meta(bad.path, {**meta, "heartbeat_at": "yesterday", "started_at": [1], "ended_at": None,
                                 "status": "running"})
    client = TestClient(create_app(LogbookStore(logdir)))
    runs = {r["name"]: r for r in client.get("/api/v1/projects/p/runs").json()["runs"]}
    assert sorted(runs) == ["bad", "good"] and runs["bad"]["status"] == "crashed"
    assert client.get("/api/v1/projects").status_code == 200
    assert Logbook(logdir).run(bad.id).status == "crashed" and Logbook(logdir).run(bad.id).duration is None


def test_offsets_past_any_integer_and_names_that_would_hide_are_refused(served):
    client = served.client
    assert client.put(RUN, json={"meta": {"name": "r1"}}).status_code == 200
    assert client.get(f"{RUN}/logs", params={"offset": 2**65}).status_code == 422
    assert client.get(f"{RUN}/series", params={"keys": "x", "after": 2**65}).status_code == 422
    hidden = client.put("/api/v1/projects/.hidden/runs/r1", json={"meta": {}})
    assert hidden.status_code == 400 and "starts with '.'" in hidden.json()["detail"]


def test_a_file_where_a_folder_must_be_is_a_409(served):
    client = served.client
    assert client.put(RUN, json={"meta": {"name": "r1"}}).status_code == 200
    assert client.put(f"{RUN}/files/a", content=b"1", headers={"Content-Type": "application/octet-stream"}).is_success
    clash = client.put(f"{RUN}/files/a/b", content=b"2", headers={"Content-Type": "application/octet-stream"})
    if served.kind == "logbook":  # PostgreSQL keeps paths as keys: both are kept there
        assert clash.status_code == 409 and "folder" in clash.json()["detail"]
    else:
        assert clash.status_code == 200


def test_two_uploads_of_one_path_at_once_leave_one_whole_file(server, logdir):
    process = server()
    base = f"{process.url}{RUN}"
    assert requests.put(base, json={"meta": {"name": "r1"}}, timeout=10).status_code == 200
    size, answers = 256 << 10, {}

    def slowly(fill):
        for _ in range(16):
            yield fill * (size // 16)
            time.sleep(0.02)  # so that the two uploads interleave on the server

    def upload(fill):
        answers[fill] = requests.put(f"{base}/files/weights.bin", data=slowly(fill), timeout=60,
                                     headers={"Content-Type": "application/octet-stream"})

    threads = [threading.Thread(target=upload, args=(fill,)) for fill in (b"A", b"B")]
    for thread in threads:
        thread.start()
    # and a third upload of the same path that the client abandons half way
    with socket.create_connection(("127.0.0.1", process.port)) as raw:
        raw.sendall(b"PUT " + RUN.encode() + b"/files/weights.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/octet-stream\r\nContent-Length: 262144\r\n\r\n" + b"C" * 1000)
    for thread in threads:
        thread.join()
    assert [answers[fill].status_code for fill in (b"A", b"B")] == [200, 200]
    stored = (logdir / "p" / "r1" / "files" / "weights.bin").read_bytes()
    assert len(stored) == size and stored in (b"A" * size, b"B" * size)  # one upload whole, never a mix
    assert [p.name for p in (logdir / "p" / "r1" / "files").iterdir()] == ["weights.bin"]  # no temporary left
