"""Pushing to a stepline server on loopback: points per second delivered, and what run.log costs meanwhile.

    python benchmarks/remote_ingest.py [--points 2000000] [--repeats 3]

A real `stepline serve` process on a free loopback port. Printed beside the local-only figures of the same
run: points per second from `run.log` of 8 metrics until `finish()` returns with everything on the server
(for local-only: until everything is in the logbook), and run.log's p50 / p99 in microseconds in a loop
doing ~20 us of other work per step.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
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
    return calls * len(KEYS) / (time.perf_counter() - start)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # back to back, the queue fills and says so: expected here
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "stepline.cli.main", "serve", str(Path(folder) / "server"),
                                   "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    requests.get(url, timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            client = str(Path(folder) / "client")
            local_rates, remote_rates, local_lat, remote_lat = [], [], [], []
            for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
                local_rates.append(throughput(client, None, args.points))
                remote_rates.append(throughput(client, url, args.points))
                local_lat.append(latency(client, None))
                remote_lat.append(latency(client, url))
        finally:
            server.terminate()
            server.wait()
    print(f"\n{args.points:,} points (run.log of 8 metrics), median of {args.repeats} repeats")
    print(f"{'figure':<36}{'local logbook only':>20}{'+ stepline server':>20}")
    print(f"{'points/s until finish() returns':<36}{statistics.median(local_rates):>20,.0f}"
          f"{statistics.median(remote_rates):>20,.0f}")
    for index, label in ((0, "run.log p50 us"), (1, "run.log p99 us")):
        print(f"{label:<36}{statistics.median(r[index] for r in local_lat):>20.2f}"
              f"{statistics.median(r[index] for r in remote_lat):>20.2f}")
    print("\ntarget: at least 500,000 points/s into the server on loopback; run.log p50 as local")


if __name__ == "__main__":
    main()
