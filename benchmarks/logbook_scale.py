"""The logbook at the sizes users have: how fast stepline's readers answer, and how much memory the server takes.

    python benchmarks/logbook_scale.py [--runs 100] [--steps 100000] [--metrics 8] [--big-steps 1000000]
                                       [--dir DIR] [--baseline-src OLD/src] [--postgres postgresql:///postgres]

Builds (or reuses, in --dir) a project `scale` of --runs runs of --steps steps of --metrics metrics, written
through stepline as training would, and a project `big` of one run of --big-steps steps. Then, each in a fresh
process, as a user would meet them:
- a fresh `stepline serve`: its first and warm runs list of `scale`; first and warm series of the big run's
  first metric downsampled to 1,000 points; a compare of 10 runs (all their metrics, 1,000 points each); its
  RSS after the series of every metric of every run was asked for (and its peak);
- `stepline list --project scale` and `stepline show BIG`, wall time of the command;
- `stepline.Logbook(DIR).run(BIG).series("metric_0")`, the call's time.
"-" is a figure not measured there; "> N s" one that took longer than --timeout (a server that times out is
stopped there, and its RSS at that moment shown).

Beside the targets of issue 14, and, with --baseline-src (the src/ folder of another checkout, e.g. one made
with `git worktree add /tmp/before <commit>`), the same figures from that code on the same files; a
figure it cannot give within --timeout seconds is shown as "> N s". With --postgres (an admin URL), the
runs are migrated into a database of their own and the server figures are measured over it too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import requests

REPEATS = 5
TARGETS = {"runs list, first": "<= 1 s", "runs list, warm": "<= 50 ms", "big series, first": "<= 150 ms",
           "RSS after every run": "<= 300 MB", "Logbook series": "<= 300 ms"}
SLOW = "slow"  # a figure that took longer than --timeout


def build(root: Path, runs: int, steps: int, metrics: int, big_steps: int) -> None:
    """The project, written as training writes it; skipped when --dir holds one of these sizes already."""
    marker = root / f".built-{runs}x{steps}x{metrics}+{big_steps}"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    import stepline

    warnings.simplefilter("ignore")  # the queue-full warning: the loop logs back to back
    keys = [f"metric_{i}" for i in range(metrics)]
    started = time.perf_counter()
    for project, count, length in (("scale", runs, steps), ("big", 1, big_steps)):
        for r in range(count):
            run = stepline.init(project=project, name=f"{project}-{r}", dir=root, config={"lr": 10.0 ** -(r % 5)})
            for step in range(length):
                run.log({key: (step + i) * 0.001 + r for i, key in enumerate(keys)}, step=step,
                        epoch=step / 1000)
            run.finish()
    points = (runs * steps + big_steps) * metrics
    elapsed = time.perf_counter() - started
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"built {points:,} points in {elapsed:.0f} s ({points / elapsed:,.0f} points/s), {size / 2**30:.1f} GiB "
          f"on disk", flush=True)
    marker.touch()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MB of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Slow(Exception):
    """A figure that took longer than the benchmark waits."""


def timed_get(url: str, timeout: float) -> tuple[float, dict]:
    started = time.perf_counter()
    try:
        response = requests.get(url, timeout=timeout)
    except requests.Timeout:
        raise Slow from None
    response.raise_for_status()
    return time.perf_counter() - started, response.json()


def serve_figures(env: dict[str, str], store: str, timeout: float) -> dict[str, float | str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "stepline.cli.main", "serve", "--port", str(port),
                               *(["--store", store] if store.startswith("postgres") else [store])],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    figures: dict[str, float | str] = {}
    try:
        deadline = time.monotonic() + 120
        while True:  # the dashboard's page: ready, without touching any run
            try:
                if requests.get(base + "/", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        figures["RSS at start"] = rss_mb(server.pid)[0]
        api = base + "/api/v1/projects"
        try:
            figures["runs list, first"] = SLOW
            figures["runs list, first"], listed = timed_get(f"{api}/scale/runs", timeout)
            figures["runs list, warm"] = statistics.median(
                timed_get(f"{api}/scale/runs", timeout)[0] for _ in range(REPEATS))
            [big] = timed_get(f"{api}/big/runs", timeout)[1]["runs"]
            series = f"{api}/big/runs/{big['id']}/series?keys=metric_0&points=1000"
            figures["big series, first"] = timed_get(series, timeout)[0]
            figures["big series, warm"] = statistics.median(timed_get(series, timeout)[0] for _ in range(REPEATS))
            ids = ",".join(run["id"] for run in listed["runs"][:10])
            figures["compare of 10 runs"] = timed_get(f"{api}/scale/compare?runs={ids}&points=1000", timeout)[0]
            started = time.perf_counter()
            for run in listed["runs"]:
                keys = ",".join(run["metrics"])
                timed_get(f"{api}/scale/runs/{run['id']}/series?keys={keys}&points=1000", timeout)
            figures["series of every run"] = time.perf_counter() - started
            figures["RSS after every run"], figures["RSS peak"] = rss_mb(server.pid)
        except Slow:
            figures["RSS when it timed out"] = rss_mb(server.pid)[0]
            figures["(the rest)"] = SLOW
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        server.stderr.close()
    return figures


def command_figures(env: dict[str, str], root: Path, timeout: float) -> dict[str, float | str]:
    figures: dict[str, float | str] = {}
    for label, args in (("stepline list", ["list", "--project", "scale"]), ("stepline show BIG", ["show", "big-0"])):
        started = time.perf_counter()
        try:
            subprocess.run([sys.executable, "-m", "stepline.cli.main", *args, "--dir", str(root)], env=env,
                           check=True, stdout=subprocess.DEVNULL, timeout=timeout)
            figures[label] = time.perf_counter() - started
        except subprocess.TimeoutExpired:
            figures[label] = SLOW
    code = ("import json, sys, time, stepline\n"
            "run = stepline.Logbook(sys.argv[1]).run('big-0')\n"
            "started = time.perf_counter(); series = run.series('metric_0')\n"
            "print(json.dumps([time.perf_counter() - started, len(series)]))")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(root)], env=env, check=True, capture_output=True,
                             text=True, timeout=timeout).stdout
        figures["Logbook series"] = json.loads(out)[0]
    except subprocess.TimeoutExpired:
        figures["Logbook series"] = SLOW
    return figures


def migrate_to_postgres(admin_url: str, root: Path) -> str:
    import psycopg

    name = f"stepline_scale_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.execute(f"CREATE DATABASE {name}")
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "migrate", "--from", str(root), "--to", url],
                   check=True, stderr=subprocess.DEVNULL)
    print(f"migrated into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def show(columns: dict[str, dict[str, float | str]], timeout: float) -> None:
    labels = list(dict.fromkeys(label for figures in columns.values() for label in figures))
    print(f"\n{'figure':<24}" + "".join(f"{name:>22}" for name in columns) + f"{'target':>14}")
    for label in labels:
        cells = []
        for figures in columns.values():
            value = figures.get(label)
            if value is None:
                cells.append("-")
            elif value == SLOW:
                cells.append(f"> {timeout:.0f} s")
            elif label.startswith("RSS"):
                cells.append(f"{value:,.0f} MB")
            else:
                cells.append(f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s")
        print(f"{label:<24}" + "".join(f"{cell:>22}" for cell in cells) + f"{TARGETS.get(label, ''):>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--big-steps", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, help="build the project here and keep it (default: a temporary folder)")
    parser.add_argument("--baseline-src", type=Path, help="the src/ of another checkout, measured beside this one")
    parser.add_argument("--postgres", help="an admin URL: measure the server over PostgreSQL too")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one figure")
    args = parser.parse_args()
    temporary = None if args.dir else tempfile.mkdtemp(prefix="stepline-scale-")
    root = args.dir or Path(temporary)
    try:
        build(root, args.runs, args.steps, args.metrics, args.big_steps)
        this = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        columns = {"this code": {**serve_figures(this, str(root), args.timeout),
                                 **command_figures(this, root, args.timeout)}}
        if args.baseline_src:
            before = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
            columns["baseline code"] = {**serve_figures(before, str(root), args.timeout),
                                        **command_figures(before, root, args.timeout)}
        if args.postgres:
            columns["this code, PostgreSQL"] = serve_figures(this, migrate_to_postgres(args.postgres, root),
                                                             args.timeout)
        points = (args.runs * args.steps + args.big_steps) * args.metrics
        print(f"\n{args.runs} runs x {args.steps:,} steps x {args.metrics} metrics, and one run of "
              f"{args.big_steps:,} steps: {points:,} points")
        show(columns, args.timeout)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


if __name__ == "__main__":
    main()
