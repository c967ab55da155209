"""Requests per second into `stepline serve` from clients written for other trackers, beside stepline's own.

    python benchmarks/peer_requests.py [--requests 300] [--repeats 3] [--other-runs 300]
                                       [--postgres postgresql:///postgres]

Two real `stepline serve` processes on free loopback ports, one per store (PostgreSQL: a database of the
benchmark's own). Each figure is one client sending one point per request, one request after another, as
LMTracker's Trainer callback and Trackio's client do: an LMTracker `push-metrics` (with its name:password,
checked on every request), a Trackio `bulk_log` of one entry, and as the baseline a stepline ingest POST of
one record. Medians of the repeats, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from remote_ingest import postgres_database, start_server

PASSWORD = "bench-password"


def stepline_ingest(session: requests.Session, url: str, i: int) -> None:
    record: dict[str, Any] = {"type": "metrics", "seq": i + 1, "time": time.time(), "step": i,
                              "values": {"loss": 1 / (i + 1)}}
    session.post(f"{url}/api/v1/projects/bench/runs/wire/events", json={"events": [record]}).raise_for_status()


def lmtracker_push(session: requests.Session, url: str, i: int) -> None:
    answer = session.post(f"{url}/api/push-metrics", headers={"Authorization": f"ana:{PASSWORD}"},
                          json={"project_name": "bench", "run_name": "lm", "metrics": {"loss": 1 / (i + 1)}})
    assert answer.json() == {"ok": True}, answer.text


def trackio_log(session: requests.Session, url: str, i: int) -> None:
    entry = {"project": "bench", "run": "trackio", "run_id": None, "metrics": {"loss": 1 / (i + 1)}, "step": i,
             "config": None, "log_id": str(uuid.uuid4())}
    answer = session.post(f"{url}/api/bulk_log", json={"logs": [entry], "hf_token": None})
    assert answer.json() == {"data": {"stored": 1}}, answer.text


CLIENTS: dict[str, Callable[[requests.Session, str, int], None]] = {
    "stepline ingest, 1 record (baseline)": stepline_ingest,
    "LMTracker push-metrics": lmtracker_push,
    "Trackio bulk_log, 1 entry": trackio_log,
}


def rate(client: Callable[[requests.Session, str, int], None], url: str, first: int, count: int) -> float:
    with requests.Session() as session:
        start = time.perf_counter()
        for i in range(first, first + count):
            client(session, url, i)
        return count / (time.perf_counter() - start)


def prepare(url: str, other_runs: int, *where: str) -> None:
    for i in range(other_runs):  # the peers name their run on every request: it is found among the others
        requests.put(f"{url}/api/v1/projects/bench/runs/other{i}", json={"meta": {"name": f"other-{i}"}},
                     ).raise_for_status()
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "user", "add", "ana", "--password-stdin",
                    *where], input=f"{PASSWORD}\n", text=True, check=True, capture_output=True)
    requests.put(f"{url}/api/v1/projects/bench/runs/wire", json={"meta": {"name": "wire"}}).raise_for_status()
    answer = requests.post(f"{url}/api/create-project", json={"name": "bench"},
                           headers={"Authorization": f"ana:{PASSWORD}"})
    assert answer.json() == {"ok": True}, answer.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--other-runs", type=int, default=300, help="runs the project holds besides the pushed ones")
    parser.add_argument("--postgres", default="postgresql:///postgres",
                        help="an admin URL of a PostgreSQL server; the benchmark makes and drops its own database")
    args = parser.parse_args()
    rates: dict[str, list[list[float]]] = {name: [[], []] for name in CLIENTS}
    with tempfile.TemporaryDirectory() as folder, postgres_database(args.postgres) as database:
        logbook = Path(folder) / "server"
        servers = [start_server(logbook), start_server(Path(folder) / "unused", "--store", database)]
        try:
            prepare(servers[0][1], args.other_runs, "--dir", str(logbook))
            prepare(servers[1][1], args.other_runs, "--store", database)
            for repeat in range(args.repeats):  # interleaved, so drift in the machine's load hits all alike
                for name, client in CLIENTS.items():
                    for index, (_, url) in enumerate(servers):
                        rates[name][index].append(rate(client, url, repeat * args.requests, args.requests))
        finally:
            for server, _ in servers:
                server.terminate()
                server.wait()
    print(f"\nrequests/s, one point each, one client, {args.requests} requests, median of {args.repeats} repeats; "
          f"{args.other_runs} other runs in the project")
    print(f"{'client':<40}{'server, logbook':>18}{'server, PostgreSQL':>20}")
    for name, (on_logbook, on_postgres) in rates.items():
        print(f"{name:<40}{statistics.median(on_logbook):>18,.0f}{statistics.median(on_postgres):>20,.0f}")


if __name__ == "__main__":
    main()
