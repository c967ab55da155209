"""What a real `stepline serve` refuses before any route sees it: cross-site writes, foreign Host names, and
bodies over their limit, also when sent in chunks without a length."""

from __future__ import annotations

import requests

import stepline
from stepline import Logbook

EVENTS = b'{"events": [{"type": "metrics", "seq": 1, "time": 1.0, "step": 0, "values": {"x": 1.0}}]}'


def open_run(url):
    response = requests.put(f"{url}/api/v1/projects/p/runs/r1", json={"meta": {"name": "r1"}}, timeout=10)
    assert response.status_code == 200, response.text
    return f"{url}/api/v1/projects/p/runs/r1"


def test_a_cross_site_write_is_refused_and_nothing_is_stored(server, logdir):
    process = server()
    run = open_run(process.url)
    evil = requests.post(f"{run}/events", data=EVENTS, timeout=10,
                         headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert evil.status_code == 403 and "another site" in evil.json()["detail"]
    simple = requests.post(f"{run}/events", data=EVENTS, headers={"Content-Type": "text/plain"}, timeout=10)
    assert simple.status_code == 415 and "application/json" in simple.json()["detail"]
    deleted = requests.delete(run, headers={"Origin": "http://evil.example"}, timeout=10)
    assert deleted.status_code == 403
    assert Logbook(logdir).run("r1", project="p").metric_keys() == []
    # the same write from this server's own page, or from a client that sends no Origin, lands
    own = requests.post(f"{run}/events", data=EVENTS, timeout=10,
                        headers={"Content-Type": "application/json", "Origin": process.url})
    assert own.status_code == 200 and Logbook(logdir).run("r1", project="p").series("x").values == [1.0]


def test_a_foreign_host_name_is_refused_on_loopback(server, logdir):
    stepline.init(project="p", dir=logdir).finish()
    process = server()
    rebound = requests.get(f"{process.url}/api/v1/projects", headers={"Host": "evil.example"}, timeout=10)
    assert rebound.status_code == 421 and "DNS rebinding" in rebound.json()["detail"]
    for host in (f"127.0.0.1:{process.port}", f"localhost:{process.port}"):
        assert requests.get(f"{process.url}/api/v1/projects", headers={"Host": host}, timeout=10).status_code == 200


def test_bodies_over_their_limit_are_413_also_when_chunked(server, logdir, monkeypatch):
    monkeypatch.setenv("STEPLINE_MAX_UPLOAD_BYTES", str(1 << 20))
    process = server()
    run = open_run(process.url)

    def chunks(total, size=1 << 16):
        for _ in range(total // size):
            yield b" " * size

    # a run's metadata: a 1 MiB limit, sent as 48 MiB in chunks with no Content-Length
    chunked = requests.put(run, data=chunks(48 << 20), headers={"Content-Type": "application/json"}, timeout=60)
    assert chunked.status_code == 413 and "over 1048576 bytes" in chunked.json()["detail"]
    upload = requests.put(f"{run}/files/big.bin", data=b"\0" * (2 << 20), timeout=60,
                          headers={"Content-Type": "application/octet-stream"})
    assert upload.status_code == 413
    streamed = requests.put(f"{run}/files/big.bin", data=chunks(2 << 20), timeout=60,
                            headers={"Content-Type": "application/octet-stream"})
    assert streamed.status_code == 413
    assert Logbook(logdir).run("r1", project="p").files() == []  # nothing half-written is kept
