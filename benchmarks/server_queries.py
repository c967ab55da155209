"""How fast `stepline serve` answers the two heaviest queries, beside reading the raw files.

    python benchmarks/server_queries.py [--points 1000000] [--runs 1000] [--repeats 10]

A real `stepline serve` process on a free loopback port, asked over HTTP:
- the series endpoint on a run of 1,000,000 points, downsampled to 1,000 (cold: first request; warm:
  median of the following ones), beside the time to read that run's metrics file into memory;
- the runs list of a project of 1,000 runs, beside the time to read their 1,000 meta.json files.
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # building the big run back to back fills the queue, as it should
    with tempfile.TemporaryDirectory() as folder:
        print(f"building a {args.points:,}-point run and a project of {args.runs:,} runs ...", flush=True)
        big = stepline.init(project="big", dir=folder)
        for step in range(args.points):
            big.log({"loss": 1.0 / (step + 1)}, step=step)
        big.finish()
        for i in range(args.runs):
            run = stepline.init(project="many", name=f"run-{i}", dir=folder, config={"lr": i * 1e-4, "seed": i})
            for step in range(20):
                run.log({"train/loss": 1 / (step + 1), "eval/acc": step / 20}, step=step)
            run.finish()

        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "stepline.cli.main", "serve", folder, "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            for _ in range(300):
                try:
                    requests.get(f"http://127.0.0.1:{port}/", timeout=1)  # the page: no logbook read
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            session = requests.Session()
            series_url = f"{base}/projects/big/runs/{big.id}/series?keys=loss&points=1000"
            runs_url = f"{base}/projects/many/runs"

            series_cold = timed(lambda: session.get(series_url).raise_for_status())
            series_warm = statistics.median(timed(lambda: session.get(series_url).raise_for_status())
                                            for _ in range(args.repeats))
            runs_cold = timed(lambda: session.get(runs_url).raise_for_status())
            runs_warm = statistics.median(timed(lambda: session.get(runs_url).raise_for_status())
                                          for _ in range(args.repeats))
            assert len(session.get(runs_url).json()["runs"]) == args.runs
        finally:
            server.terminate()
            server.wait()

        metrics_file = Path(big.path) / "metrics.jsonl"
        megabytes = metrics_file.stat().st_size / 1e6
        raw_series = statistics.median(timed(lambda: metrics_file.read_bytes()) for _ in range(3))
        metas = list(Path(folder, "many").glob("*/meta.json"))
        raw_runs = statistics.median(timed(lambda: [m.read_bytes() for m in metas]) for _ in range(3))

    print(f"\n{'query':<44}{'cold ms':>10}{'warm ms':>10}{'raw file read ms':>18}")
    print(f"{f'series, {args.points:,} points -> 1,000':<44}{series_cold * 1e3:>10.1f}{series_warm * 1e3:>10.1f}"
          f"{raw_series * 1e3:>18.1f}   ({megabytes:.0f} MB)")
    print(f"{f'runs list, {args.runs:,} runs':<44}{runs_cold * 1e3:>10.1f}{runs_warm * 1e3:>10.1f}"
          f"{raw_runs * 1e3:>18.1f}")
    print(f"\ntargets: series warm < 100 ms, runs list < 200 ms (warm medians of {args.repeats} requests)")


if __name__ == "__main__":
    main()
