"""The wire's line form: a client ships its logbook's lines as they are on disk (NDJSON), a logbook server stores
them as received; torn lines, resumed pushes, bad lines and a bug in shipping, against a real `stepline serve`."""

from __future__ import annotations

import gzip
import json
import math
import sys

import orjson
import pytest
import requests

import stepline
from stepline import Logbook, metrics_batch
from stepline.remote import shipper as shipper_module
from stepline.remote.client import RemoteClient
from stepline.remote.shipper import Shipper

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def serverdir(tmp_path):
    return tmp_path / "server-logbook"


def offline_run(logdir, steps: int = 30):
    run = stepline.init(project="p", name="later", dir=logdir, config={"lr": 0.1})
    for step in range(steps):
        values = {"loss": 1 / (step + 1), "big": 2**40 + step, "flag": step % 2 == 0,
                  "odd": math.nan if step == 3 else (math.inf if step == 4 else -0.5)}
        if step % 7 == 0:  # keys that differ from record to record
            values["eval/µ"] = step
        run.log(values, step=step, epoch=(math.nan if step == 8 else step / 10) if step % 3 else None)
        if step % 10 == 0:
            run.info(f"step {step}", step=step)
    run.finish()
    return run


def test_a_pushed_run_s_lines_are_stored_byte_for_byte_as_the_client_wrote_them(server, serverdir, logdir):
    process = server(root=serverdir)
    run = offline_run(logdir, steps=5000)
    shipper = Shipper(run.path, RemoteClient(process.url))
    shipper.ship()
    assert shipper.records_sent == 5000 + 500 + 1  # metrics, logs, params
    remote = Logbook(serverdir).run(run.id)
    for name in ("metrics.jsonl", "logs.jsonl", "params.jsonl"):
        assert (remote.path / name).read_bytes() == (run.path / name).read_bytes(), name
    local = Logbook(logdir).run(run.id)
    assert [str(row) for row in remote.metrics()] == [str(row) for row in local.metrics()]  # NaN, inf, ints
    assert remote.summaries()["big"].last == 2**40 + 4999  # the server's index read the lines it stored
    body = requests.get(f"{process.url}/api/v1/projects/p/runs/{run.id}/series",
                        params={"keys": "odd", "raw": "true"}, timeout=10).json()
    assert body["series"][0]["count"] == 5000


def test_batches_read_natively_land_as_the_general_parser_reads_them_once_each_in_either_store(served, tmp_path):
    run = offline_run(tmp_path / "client", steps=100)
    lines = (run.path / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    assert metrics_batch.read_lines(b"".join(lines), limit=100) is not None or not metrics_batch.NATIVE
    base = f"/api/v1/projects/p/runs/{run.id}"
    assert served.client.put(base, json={"meta": {"name": "later"}}).status_code == 200

    def post(body: bytes) -> tuple[int, int]:
        answer = served.client.post(f"{base}/events", content=body, headers=NDJSON).json()
        return answer["accepted"], answer["duplicates"]

    assert post(b"".join(lines[:40])) == (40, 0)
    assert post(b"".join(lines[:40])) == (0, 40)  # sent again after a lost answer
    assert post(b"".join(lines[20:70])) == (30, 20)  # partly
    spaced = json.dumps(orjson.loads(lines[70])).encode() + b"\n"  # another layout: the general parser reads it
    assert post(spaced + b"".join(lines[71:99]) + lines[99].rstrip(b"\n")) == (30, 0)
    local = Logbook(tmp_path / "client").run(run.id)
    expected = [(row["step"], {key: repr(float(value)) for key, value in row.items()
                               if key not in ("step", "timestamp", "epoch")}) for row in local.metrics()]
    assert [(step, {key: repr(float(value)) for key, value in values.items()})
            for step, values in served.store.metric_rows("p", run.id)] == expected
    summaries = served.client.get(base).json()["metrics"]
    assert summaries["eval/µ"]["count"] == 15 and summaries["big"]["last"] == 2**40 + 99
    assert summaries["odd"]["count"] == 100
    [by_epoch] = served.client.get(f"{base}/series", params={"keys": "loss", "x": "epoch", "raw": "true"}).json()[
        "series"]
    expected_x = [row.get("epoch", math.nan) for row in local.metrics()]  # NaN: a record without one, too
    assert by_epoch["x"] == ["NaN" if math.isnan(x) else x for x in expected_x]


def test_a_torn_line_in_the_client_logbook_is_skipped_and_every_other_record_lands(server, serverdir, logdir):
    process = server(root=serverdir)
    run = offline_run(logdir)
    metrics = run.path / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(b"".join(lines[:10]) + b'{"type":"metrics","seq":11,"ti\n' + b"".join(lines[10:]))
    shipper = Shipper(run.path, RemoteClient(process.url))
    shipper.ship()
    assert shipper.records_sent == 30 + 3 + 1
    remote = Logbook(serverdir).run(run.id)
    assert [row["step"] for row in remote.metrics()] == list(range(30))
    assert b'"ti\n' not in (remote.path / "metrics.jsonl").read_bytes()
    assert shipper.ship() == 0  # and nothing twice


def test_a_push_resumed_part_way_sends_only_what_the_server_lacks(server, serverdir, logdir):
    process = server(root=serverdir)
    run = offline_run(logdir, steps=100)
    base = f"{process.url}/api/v1/projects/p/runs/{run.id}"
    assert requests.put(base, json={"meta": {"name": "later"}}, timeout=10).status_code == 200
    head = b"".join((run.path / "metrics.jsonl").read_bytes().splitlines(keepends=True)[:40])
    assert requests.post(f"{base}/events", data=head, headers=NDJSON, timeout=10).json()["accepted"] == 40
    shipper = Shipper(run.path, RemoteClient(process.url))
    shipper.ship()
    assert shipper.records_sent == 60 + 10 + 1
    remote = Logbook(serverdir).run(run.id)
    assert [row["step"] for row in remote.metrics()] == list(range(100))
    assert (remote.path / "metrics.jsonl").read_bytes() == (run.path / "metrics.jsonl").read_bytes()


def test_batches_cut_by_bytes_and_by_lines_and_a_line_longer_than_a_batch_all_land_once(server, serverdir, logdir,
                                                                                         monkeypatch):
    monkeypatch.setattr(shipper_module, "LINE_BATCH_BYTES", 2000)  # about 20 lines
    monkeypatch.setattr(shipper_module, "LINE_BATCH_RECORDS", 7)
    process = server(root=serverdir)
    run = stepline.init(project="p", dir=logdir)
    for step in range(100):
        wide = {f"layer_{i}": float(i) for i in range(300)} if step == 50 else {}  # a line of 4 KB
        run.log({"loss": 1 / (step + 1), **wide}, step=step)
    run.finish()
    bodies: list[bytes] = []
    client = RemoteClient(process.url)
    send_lines = client.send_lines
    monkeypatch.setattr(client, "send_lines", lambda *args: bodies.append(args[2]) or send_lines(*args))
    shipper = Shipper(run.path, client)
    shipper.ship()
    assert shipper.records_sent == sum(body.count(b"\n") for body in bodies) == 100
    assert max(body.count(b"\n") for body in bodies) == 7
    assert [len(body.split(b"\n", 1)[0]) > 2000 for body in bodies if len(body) > 2000] == [True]  # the wide line
    remote = Logbook(serverdir).run(run.id)
    assert (remote.path / "metrics.jsonl").read_bytes() == (run.path / "metrics.jsonl").read_bytes()
    assert remote.summaries()["layer_299"].count == 1 and remote.summaries()["loss"].count == 100
    assert shipper.ship() == 0


def test_bad_lines_are_refused_naming_the_line_and_nothing_of_the_batch_is_stored(server, serverdir):
    process = server(root=serverdir)
    base = f"{process.url}/api/v1/projects/p/runs/abcd1234"
    assert requests.put(base, json={"meta": {"name": "target"}}, timeout=10).status_code == 200
    # written with spaces, as json.dumps writes them: stored as received, they keep them
    good = [json.dumps({"type": "metrics", "seq": seq, "time": 1.0, "step": seq, "values": {"x": 1.0}}).encode()
            for seq in (1, 2, 3)]
    cases = {
        b"\n".join([good[0], b"{not json", good[2]]): "line 2 is not JSON",
        b"\n".join([good[0], b'{"type": "metrics",\n"seq": 2, "time": 1.0, "step": 2, "values": {"x": 1}}']):
            "line 2 is not JSON",  # a record cut by a line break: it would not be one line in the logbook
        b"\n".join([good[0], good[1].replace(b'"x": 1.0', b'"x": "high"')]): "values",
        b"\n".join([good[0], b"", good[1]]): "line 2 is not JSON",
    }
    for body, said in cases.items():
        response = requests.post(f"{base}/events", data=body, headers=NDJSON, timeout=10)
        assert response.status_code == 422, body
        assert said in orjson.dumps(response.json()["detail"]).decode(), (said, response.json())
    assert requests.get(base, timeout=10).json()["steps"] == 0
    zipped = gzip.compress(b"\n".join(good) + b"\n")
    answer = requests.post(f"{base}/events", data=zipped, headers={**NDJSON, "Content-Encoding": "gzip"},
                           timeout=10).json()
    assert answer["accepted"] == 3 and answer["max_seq"]["metrics"] == 3
    assert (serverdir / "p" / "abcd1234" / "metrics.jsonl").read_bytes() == b"\n".join(good) + b"\n"


def test_a_bug_in_shipping_is_reported_and_finish_says_what_is_not_sent(server, serverdir, logdir, monkeypatch):
    process = server(root=serverdir)

    def broken(self, project, run_id, lines):
        raise ValueError("a bug")

    monkeypatch.setattr(RemoteClient, "send_lines", broken)
    with pytest.warns(stepline.SteplineWarning) as said:  # the shipper's thread may say it at any moment
        run = stepline.init(project="p", dir=logdir, backend=process.url)
        for step in range(10):
            run.log({"loss": 1.0}, step=step)
        assert run.finish(timeout=30) is False
    text = " ".join(str(w.message) for w in said)
    assert "Please report this bug" in text and "ValueError: a bug" in text
    assert "records or files of run" in text and "stepline sync" in text
    assert Logbook(logdir).run(run.id).metrics()[-1]["step"] == 9  # the local copy keeps everything


def test_a_client_compresses_only_what_crosses_a_network():
    assert RemoteClient("http://127.0.0.1:8683").compress is False
    assert RemoteClient("http://localhost:8683").compress is False
    assert RemoteClient("http://10.1.2.3:8683").compress is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's page faults from /proc")
@pytest.mark.filterwarnings("ignore:stepline.s queue is full")
def test_a_server_reuses_one_batch_s_memory_for_the_next(server, serverdir, logdir):
    """glibc maps each copy of a 4 MB body afresh unless told otherwise (``tune_allocator``): hundreds of page
    faults a MB, an eighth of a server's CPU on ingest. Tuned, the batches after the first few fault a few pages."""
    process = server(root=serverdir)
    run = stepline.init(project="p", dir=logdir)
    shipper = Shipper(run.path, RemoteClient(process.url))

    def log_and_ship(steps: range) -> int:
        for step in steps:
            run.log({f"metric_{i}": step * 0.001 + i for i in range(8)}, step=step)
        run.flush()
        before = _page_faults(process.process.pid)
        shipper.ship()
        return _page_faults(process.process.pid) - before

    log_and_ship(range(80_000))  # four full batches: the server's heap grows to its working size
    size_before = (run.path / "metrics.jsonl").stat().st_size
    faults = log_and_ship(range(80_000, 200_000))
    megabytes = ((run.path / "metrics.jsonl").stat().st_size - size_before) / 2**20
    run.finish()
    assert megabytes > 20  # several batches of 4 MB
    assert faults / megabytes < 25, f"{faults} page faults for {megabytes:.0f} MB of lines (untuned: 450 a MB)"
    assert Logbook(serverdir).run(run.id).summaries()["metric_7"].count == 200_000


def _page_faults(pid: int) -> int:
    """The minor page faults of process ``pid`` so far (proc(5): the 10th field of stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])
