"""Pushing to a stepline server on loopback: points per second delivered, and what run.log costs meanwhile,
with the server's runs in a logbook folder and in PostgreSQL.

    python benchmarks/remote_ingest.py [--points 2000000] [--repeats 3] [--postgres postgresql:///postgres]
                                       [--clients 16]

Two real `stepline serve` processes on free loopback ports, one per store (PostgreSQL: a database of the
benchmark's own on the local server). Printed side by side with the local-only figures of the same run:
points per second from `run.log` of 8 metrics until `finish()` returns with everything on the server (for
local-only: until everything is in the logbook), run.log's p50 / p99 in microseconds in a loop doing ~20 us
of other work per step, and the series query on a 1,000,000-point run downsampled to 1,000 points. With
``--clients N``, also N client processes at once, each logging its own run of points/N points: points per
second from the moment all of them are ready until the last one's finish() returns, each run checked whole.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import requests

import stepline

KEYS = [f"metric_{i}" for i in range(8)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def throughput(folder: str, backend: str | None, points: int) -> float:
    run = stepline.init(project="bench", dir=folder, backend=backend)
    calls = points // len(KEYS)
    start = time.perf_counter()
    for step in range(calls):
        run.log({key: step * 0.001 + i for i, key in enumerate(KEYS)}, step=step)
    assert run.finish(timeout=600)
    elapsed = time.perf_counter() - start
    if backend:  # every point is there, not merely sent
        metrics = requests.get(f"{backend}/api/v1/projects/bench/runs/{run.id}", timeout=60).json()["metrics"]
        assert all(metrics[key]["count"] == calls for key in KEYS), metrics
    return calls * len(KEYS) / elapsed


def latency(folder: str, backend: str | None, calls: int = 20_000) -> tuple[float, float]:
    run = stepline.init(project="bench", dir=folder, backend=backend)
    durations = []
    for step in range(calls):
        end = time.perf_counter() + 20e-6
        while time.perf_counter() < end:
            pass
        values = {key: step * 0.001 + i for i, key in enumerate(KEYS)}
        t0 = time.perf_counter_ns()
        run.log(values, step=step)
        durations.append(time.perf_counter_ns() - t0)
    run.finish(timeout=600)
    durations.sort()
    return durations[len(durations) // 2] / 1000, durations[int(len(durations) * 0.99)] / 1000


# One of --clients' processes: ready once its run is open, then it logs on a line from its parent and prints
# the clock at its finish() and its run's id.
CLIENT = """
import sys, time, warnings
import stepline
warnings.simplefilter("ignore")
folder, backend, calls = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
run = stepline.init(project="clients", dir=folder, backend=backend)
keys = [f"metric_{i}" for i in range(8)]
print("ready", flush=True)
sys.stdin.readline()
for step in range(calls):
    run.log({key: step * 0.001 + i for i, key in enumerate(keys)}, step=step)
assert run.finish(timeout=600)
print(time.monotonic(), run.id, flush=True)
"""


def concurrent_clients(folder: str, backend: str | None, points: int, clients: int) -> float:
    """Points per second from ``clients`` processes logging at once, each its own run, until the last one's
    finish() returns (for a server: with every point on the server)."""
    calls = points // clients // len(KEYS)
    processes = [subprocess.Popen([sys.executable, "-c", CLIENT, folder, backend or "", str(calls)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    start = time.monotonic()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    ends = [process.communicate(timeout=900)[0].split() for process in processes]
    elapsed = max(float(end) for end, _ in ends) - start
    for _, run_id in ends if backend else ():
        metrics = requests.get(f"{backend}/api/v1/projects/clients/runs/{run_id}", timeout=60).json()["metrics"]
        assert all(metrics[key]["count"] == calls for key in KEYS), metrics
    return calls * len(KEYS) * clients / elapsed


def start_server(folder: Path, *store: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "stepline.cli.main", "serve", str(folder), "--port", str(port),
                               *store], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(url, timeout=1)
            return server, url
        except requests.ConnectionError:
            if server.poll() is not None:
                raise RuntimeError(server.stderr.read().decode()) from None  # type: ignore[union-attr]
            time.sleep(0.1)
    raise RuntimeError("stepline serve did not start")


def series_query(folder: str, url: str, points: int, repeats: int) -> tuple[float, float]:
    """(cold, warm median) seconds of the series endpoint on a run of ``points`` points, downsampled to 1,000."""
    run = stepline.init(project="series", dir=folder, backend=url)
    for step in range(points):
        run.log({"v": math.sin(step / 1000)}, step=step)
    assert run.finish(timeout=600)
    query = f"{url}/api/v1/projects/series/runs/{run.id}/series?keys=v&points=1000"
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        body = requests.get(query, timeout=600).json()
        times.append(time.perf_counter() - start)
        assert body["series"][0]["count"] == points and len(body["series"][0]["x"]) <= 1000
    return times[0], statistics.median(times[1:])


@contextlib.contextmanager
def postgres_database(admin: str) -> Iterator[str]:
    """A database of this benchmark's own, dropped afterwards."""
    import psycopg

    name = f"stepline_bench_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    base, _, database = admin.rpartition("/")
    try:
        yield f"{base}/{name}" + "".join(database.partition("?")[1:])
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--series-points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql:///postgres",
                        help="an admin URL of a PostgreSQL server; the benchmark makes and drops its own database")
    parser.add_argument("--clients", type=int, default=0,
                        help="also measure this many client processes logging at once (--points in all)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # back to back, the queue fills and says so: expected here
    with tempfile.TemporaryDirectory() as folder, postgres_database(args.postgres) as database:
        servers = [start_server(Path(folder) / "server"), start_server(Path(folder) / "auth", "--store", database)]
        urls = [url for _, url in servers]
        client = str(Path(folder) / "client")
        rates: list[list[float]] = [[], [], []]
        latencies: list[list[tuple[float, float]]] = [[], [], []]
        together: list[list[float]] = [[], [], []]
        try:
            for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits all alike
                for index, backend in enumerate([None, *urls]):
                    rates[index].append(throughput(client, backend, args.points))
                    latencies[index].append(latency(client, backend))
            queries = [series_query(client, url, args.series_points, 10) for url in urls]
            for _ in range(args.repeats if args.clients else 0):  # apart: their aftermath would slow the rest
                for index, backend in enumerate([None, *urls]):
                    together[index].append(concurrent_clients(client, backend, args.points, args.clients))
        finally:
            for server, _ in servers:
                server.terminate()
                server.wait()
    print(f"\n{args.points:,} points (run.log of 8 metrics), median of {args.repeats} repeats")
    print(f"{'figure':<40}{'local logbook only':>20}{'+ server, logbook':>20}{'+ server, PostgreSQL':>22}")
    print(f"{'points/s until finish() returns':<40}" + "".join(
        f"{statistics.median(r):>{w},.0f}" for r, w in zip(rates, (20, 20, 22))))
    # each repeat's delivered rate over the local-only rate of the same repeat, then the median
    ratios = [statistics.median(r / local for r, local in zip(rates[index], rates[0])) for index in (1, 2)]
    print(f"{'ratio to local only (median of repeats)':<40}{'1.00':>20}{ratios[0]:>20.2f}{ratios[1]:>22.2f}")
    for index, label in ((0, "run.log p50 us"), (1, "run.log p99 us")):
        print(f"{label:<40}" + "".join(f"{statistics.median(x[index] for x in lat):>{w}.2f}"
                                       for lat, w in zip(latencies, (20, 20, 22))))
    if args.clients:
        print(f"{f'{args.clients} clients at once, points/s':<40}" + "".join(
            f"{statistics.median(r):>{w},.0f}" for r, w in zip(together, (20, 20, 22))))
        ratios = [statistics.median(r / local for r, local in zip(together[index], together[0])) for index in (1, 2)]
        print(f"{f'{args.clients} clients at once, ratio':<40}{'1.00':>20}{ratios[0]:>20.2f}{ratios[1]:>22.2f}")
    for index, label in ((0, "cold"), (1, "warm, median of 10")):
        print(f"{f'series of {args.series_points:,} points to 1,000, ' + label + ' ms':<40}{'':>20}"
              f"{queries[0][index] * 1000:>20.1f}{queries[1][index] * 1000:>22.1f}")
    print("\ntargets (issue 15): delivered to a server over a folder >= 0.7x local only, over PostgreSQL >= 0.5x; "
          "run.log p50 as local")


if __name__ == "__main__":
    main()
