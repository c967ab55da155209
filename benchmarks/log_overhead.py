"""What one ``run.log`` of 8 metrics costs the training loop, beside a baseline in the same run.

    python benchmarks/log_overhead.py [--calls 200000] [--repeats 5] [--eval-every 100]

Baseline: an orjson line appended to an open file, the cheapest synchronous logger there is. Beside
stepline as it ships (plain calls read into native metrics segments, src/stepline/metrics_segment.cpp), stepline
on its Python path (``STEPLINE_NATIVE=0``: what an install without a C++ compiler runs), and stepline
writing the JSONL only (``STEPLINE_LOGBOOK_INDEX=0``: no index), so that what the index costs the loop shows; with
``--before-src OTHER/src`` (another checkout's ``src/``, e.g. from ``git worktree add``), that code too, so that a
change is measured against the code before it in one run. Printed, each the median over repeats, each repeat in a
fresh child process, with its ratio to the baseline:
- p50 / p99 microseconds per call in a loop that does ~20 us of other work per step (a fast training
  step; the writer thread keeps up, as it does in real training), and the share of those calls over 50 us;
- points per second drained into the logbook: log calls back to back, then finish(), wall clock (here
  the writer is the bottleneck and the bounded queue makes the caller wait);
- peak RSS of the child;
With ``--eval-every N``, every Nth step also logs 2 other metrics (``eval/loss``, ``eval/acc``), as a training
loop with an evaluation does: the records' keys then differ within a writer's batch.
And, below the table, a bound of this design: the queue and writer thread with a sink that writes nothing (what
any writer sharing the caller's interpreter lock could drain at best).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

KEYS = [f"metric_{i}" for i in range(8)]
STEP_WORK_US = 20.0
EVAL_EVERY = int(os.environ.get("BENCH_EVAL_EVERY", "0"))  # set by --eval-every, for the child processes


def _percentiles(durations: list[int]) -> dict[str, float]:
    """p50 and p99 in microseconds, and the share of calls over 50 us (this machine stalls 0.3-1% of calls of
    any kind for about 130 us, so a p99 near that share flips between a few us and 100: the share says which)."""
    durations.sort()
    n = len(durations)
    return {"p50_us": durations[n // 2] / 1000, "p99_us": durations[int(n * 0.99)] / 1000,
            "over_50us_pct": 100 * sum(1 for d in durations if d > 50_000) / n}


def _step_work(microseconds: float) -> None:
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def _timed_loop(log, calls: int, work_us: float) -> tuple[list[int], float]:
    clock = time.perf_counter_ns
    durations = []
    start = time.perf_counter()
    for step in range(calls):
        if work_us:
            _step_work(work_us)
        values = {key: step * 0.001 + i for i, key in enumerate(KEYS)}
        t0 = clock()
        log(values, step)
        durations.append(clock() - t0)
        if EVAL_EVERY and step % EVAL_EVERY == 0:
            log({"eval/loss": step * 0.5, "eval/acc": 0.9}, step)
    return durations, start


def _points(calls: int) -> int:
    return calls * len(KEYS) + (2 * len(range(0, calls, EVAL_EVERY)) if EVAL_EVERY else 0)


def measure_baseline(calls: int, folder: str) -> dict[str, float]:
    import orjson

    with open(os.path.join(folder, "baseline.jsonl"), "ab") as handle:
        def log(values, step):
            line = {"step": step, "time": time.time(), "values": values}
            handle.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

        durations, _ = _timed_loop(log, calls // 4, STEP_WORK_US)
        _, start = _timed_loop(log, calls, 0)
        handle.flush()
        elapsed = time.perf_counter() - start
    return {**_percentiles(durations), "points_per_s": _points(calls) / elapsed}


def measure_stepline(calls: int, folder: str) -> dict[str, float]:
    import stepline

    paced = stepline.init(project="bench", dir=folder)
    durations, _ = _timed_loop(lambda values, step: paced.log(values, step=step), calls // 4, STEP_WORK_US)
    paced.finish()
    run = stepline.init(project="bench", dir=folder)
    _, start = _timed_loop(lambda values, step: run.log(values, step=step), calls, 0)
    run.finish()
    elapsed = time.perf_counter() - start
    with open(os.path.join(run.path, "metrics.jsonl"), "rb") as handle:
        landed = sum(1 for _ in handle)
    expected = calls + (len(range(0, calls, EVAL_EVERY)) if EVAL_EVERY else 0)
    assert landed == expected, f"{landed} of {expected} records landed"
    return {**_percentiles(durations), "points_per_s": _points(calls) / elapsed}


def measure_empty_sink(calls: int, folder: str) -> dict[str, float]:
    """The queue and the writer thread as they ship, with a sink that writes nothing: what the drain could reach
    at best while the writer shares the caller's interpreter lock, whatever it does with the records."""
    import stepline
    from stepline.sinks.logbook import LogbookSink

    LogbookSink.write = lambda self, records, lines=None: None  # type: ignore[method-assign]
    LogbookSink.write_metrics = lambda self, batch: None  # type: ignore[method-assign]
    run = stepline.init(project="bench", dir=folder)
    _, start = _timed_loop(lambda values, step: run.log(values, step=step), calls, 0)
    run.finish()
    return {"points_per_s": _points(calls) / (time.perf_counter() - start)}


def child(kind: str, calls: int) -> None:
    import resource
    import warnings

    warnings.simplefilter("ignore")  # the queue-full warning is expected in the back-to-back loop
    os.environ["STEPLINE_SYSTEM_METRICS"] = "0"  # the loop's cost alone (and the code before knows no sampler)
    measure = {"baseline": measure_baseline, "stepline": measure_stepline, "empty sink": measure_empty_sink}[kind]
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(calls, folder)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))


KINDS = {"baseline": {}, "stepline": {}, "python encoder": {"STEPLINE_NATIVE": "0"},
         "jsonl only": {"STEPLINE_LOGBOOK_INDEX": "0"}}
FIGURES = (("p50_us", "p50 us/call"), ("p99_us", "p99 us/call"), ("over_50us_pct", "calls over 50 us %"),
           ("points_per_s", "points/s drained"), ("peak_rss_mb", "peak RSS MB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before-src", help="another checkout's src/ folder, measured beside this one")
    parser.add_argument("--eval-every", type=int, default=0, help="every Nth step also logs 2 eval metrics")
    parser.add_argument("--child", choices=["baseline", "stepline", "empty sink"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.calls)
        return
    kinds = {**KINDS, "empty sink": {}}
    if args.before_src:
        kinds["before"] = {"PYTHONPATH": os.path.abspath(args.before_src)}
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeats):
        for kind, env in kinds.items():  # interleaved, so drift in the machine's load hits all alike
            child_kind = kind if kind in ("baseline", "empty sink") else "stepline"
            out = subprocess.run([sys.executable, __file__, "--child", child_kind, "--calls", str(args.calls)],
                                 check=True, capture_output=True, text=True,
                                 env={**os.environ, **env, "BENCH_EVAL_EVERY": str(args.eval_every)}).stdout
            results[kind].append(json.loads(out.strip().splitlines()[-1]))
    median = {kind: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for kind, runs in results.items()}
    empty = median.pop("empty sink")
    base = median.pop("baseline")
    evals = f", 2 eval metrics every {args.eval_every} steps" if args.eval_every else ""
    print(f"run.log of {len(KEYS)} metrics{evals}, {args.calls} calls, median of {args.repeats} repeats; "
          "each figure with its ratio to the baseline (an orjson line appended to a file)")
    print(f"{'figure':<20}{'baseline':>14}" + "".join(f"{kind:>16}{'ratio':>7}" for kind in median))
    for key, label in FIGURES:
        print(f"{label:<20}{base[key]:>14,.2f}"
              + "".join(f"{figures[key]:>16,.2f}{figures[key] / base[key] if base[key] else math.nan:>7.2f}"
                        for figures in median.values()))
    ours = median["stepline"]
    print(f"{'RSS above baseline MB':<20}{'':>14}{ours['peak_rss_mb'] - base['peak_rss_mb']:>16,.2f}")
    print(f"\nthe ceiling of a writer thread beside the caller, with a sink that writes nothing: "
          f"{empty['points_per_s']:,.0f} points/s, {empty['points_per_s'] / base['points_per_s']:.2f}x the baseline")
    if "before" in median:
        before = median["before"]
        print("\nstepline / before: " + ", ".join(
            f"{label} {ours[key] / before[key] if before[key] else math.nan:.2f}" for key, label in FIGURES))

if __name__ == "__main__":
    main()
