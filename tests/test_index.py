"""The logbook's index (stepline/logbook/index.py): whatever happened to the writer, what readers get from the
index equals a full parse of metrics.jsonl, and an index that does not match its file is never served."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stepline
from stepline import Logbook
from stepline.cli.main import main as cli
from stepline.logbook.columns import Columns
from stepline.logbook.index import MetricIndex, read_index
from stepline.logbook.metric_summary import MetricSummary
from stepline.logbook.tail import LineCounts, decode_lines
from tests.conftest import REPO, wait_until


def parsed(run_path) -> tuple[dict[str, MetricSummary], dict[str, list[tuple]], int]:
    """What the index must hold, from the JSONL the slow way: a point at a time."""
    summaries: dict[str, MetricSummary] = {}
    points: dict[str, list[tuple]] = {}
    records = 0
    with open(run_path / "metrics.jsonl", "rb") as handle:
        lines = handle.read()
    complete = lines[: lines.rfind(b"\n") + 1]  # a last line without its newline is not (yet) a record
    for record in decode_lines(complete.splitlines(), LineCounts()):
        records += 1
        for key, value in record["values"].items():
            summaries.setdefault(key, MetricSummary()).add(record["step"], value)
            points.setdefault(key, []).append((record["step"], value, record["time"], record.get("epoch")))
    return summaries, points, records


def assert_index_matches_the_file(run_path) -> None:
    index = read_index(run_path)
    summaries, points, records = parsed(run_path)
    assert index.records == records
    assert list(index.columns) == list(summaries)
    for key, expected in summaries.items():
        assert same(index.summaries()[key], expected), key
    view = Logbook(run_path.parent.parent).run(run_path.name)
    for key, expected_points in points.items():
        series = view.series(key)
        got = list(zip(series.steps, series.values, series.times, series.epochs))
        assert len(got) == len(expected_points) and all(map(same_point, got, expected_points)), key


def same(a: MetricSummary, b: MetricSummary) -> bool:
    return all(same_value(x, y) for x, y in zip(
        (a.count, a.nan_count, a.last, a.last_step, a.min, a.min_step, a.max, a.max_step),
        (b.count, b.nan_count, b.last, b.last_step, b.min, b.min_step, b.max, b.max_step)))


def same_point(a: tuple, b: tuple) -> bool:
    return all(map(same_value, a, b))


def same_value(a, b) -> bool:
    """Equal, NaN equal to NaN; a metric logged as ints and floats reads back as floats, so 0 == 0.0 here."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**53) + 1, 2**53 - 1),
                  st.booleans())
call = st.tuples(st.dictionaries(st.sampled_from(["loss", "acc", "lr", "eval/loss"]), value, min_size=1),
                 st.integers(-5, 50), st.one_of(st.none(), st.floats(allow_nan=True)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(call, max_size=30), max_size=6))
def test_columns_equal_a_point_by_point_summary_whatever_the_batches(batches):
    columns = Columns()
    expected: dict[str, MetricSummary] = {}
    seq = 0
    for batch in batches:
        records = []
        for values, step, epoch in batch:
            seq += 1
            record = {"type": "metrics", "seq": seq, "time": float(seq), "step": step, "values": values}
            if epoch is not None:
                record["epoch"] = epoch
            records.append(record)
            for key, number in values.items():
                expected.setdefault(key, MetricSummary()).add(step, number)
        columns.add(records)
    columns.settle()
    assert list(columns) == list(expected)
    for key, summary in expected.items():
        assert same(columns[key].summary, summary), key


def log_a_mixed_run(run, steps: int) -> None:
    for step in range(steps):
        values = {"loss": 1 / (step + 1), "tokens": step * 1000, "improved": step % 3 == 0}
        if step % 10 == 0:
            values["eval/loss"] = math.nan if step == 20 else step / 7
        run.log(values, step=step, epoch=step / 50 if step % 2 else None)
        if step % 25 == 0:
            run.log({"lr": 0.1}, step=step)  # another key set in the same batch
    run.log({"loss": 0.5}, step=3)  # a step that repeats


def test_the_index_equals_the_file_for_two_runs_written_at_once(logdir):
    a = stepline.init(project="p", dir=logdir)
    b = stepline.init(project="p", dir=logdir)
    log_a_mixed_run(a, 300)
    log_a_mixed_run(b, 200)
    a.finish()
    b.finish()
    for run in (a, b):
        assert (run.path / "index" / "state.json").is_file()
        assert_index_matches_the_file(run.path)
        assert not read_index(run.path).unread_bytes()
    view = Logbook(logdir).run(a.id)
    assert [type(v) for v in view.series("tokens").values[:2] + view.series("improved").values[:2]] == [
        int, int, bool, bool]  # what was logged as ints and bools reads back as such


def test_a_live_run_reads_whole_past_the_index_state(logdir):
    run = stepline.init(project="p", dir=logdir)
    log_a_mixed_run(run, 100)
    run.flush()
    assert_index_matches_the_file(run.path)
    run.log({"loss": 9.0}, step=500)
    run.flush()  # the state is written once a second: the new line is read from the JSONL
    assert Logbook(logdir).run(run.id).series("loss").values[-1] == 9.0
    run.finish()
    assert_index_matches_the_file(run.path)


def test_a_resumed_run_keeps_one_index_and_a_format_1_run_gets_one(logdir):
    run = stepline.init(project="p", dir=logdir)
    log_a_mixed_run(run, 50)
    run.finish()
    # A writer killed between writing rows and the state that counts them leaves rows past the state.
    for name in ("records.step", "records.epoch", "0.record", "0.value", "3.value"):
        with open(run.path / "index" / name, "ab") as handle:
            handle.write(b"\x7f" * 100)
    assert_index_matches_the_file(run.path)
    resumed = stepline.init(project="p", dir=logdir, resume=run.id)
    log_a_mixed_run(resumed, 30)
    resumed.finish()
    assert_index_matches_the_file(run.path)
    # A run from before the index: its first reader reads the JSONL; its next writer indexes all of it.
    shutil_rmtree(run.path / "index")
    assert_index_matches_the_file(run.path)
    again = stepline.init(project="p", dir=logdir, resume=run.id)
    again.log({"loss": 1.0})
    again.finish()
    state = orjson.loads((run.path / "index" / "state.json").read_bytes())
    assert state["covered"] == os.path.getsize(run.path / "metrics.jsonl")
    assert_index_matches_the_file(run.path)


def shutil_rmtree(path) -> None:
    import shutil

    shutil.rmtree(path)


@pytest.mark.parametrize("damage", ["rows cut", "state garbage", "state ahead of the file", "another file"])
def test_a_torn_index_is_never_served_and_is_rebuilt(logdir, damage):
    run = stepline.init(project="p", dir=logdir)
    log_a_mixed_run(run, 200)
    run.finish()
    index_dir, metrics = run.path / "index", run.path / "metrics.jsonl"
    if damage == "rows cut":
        with open(index_dir / "0.value", "r+b") as handle:
            handle.truncate(os.path.getsize(index_dir / "0.value") - 7)
    elif damage == "state garbage":
        (index_dir / "state.json").write_bytes(b'{"index": 1, "cov')
    elif damage == "state ahead of the file":
        metrics.write_bytes(metrics.read_bytes()[:-5000])  # cut back, whole lines kept below
        metrics.write_bytes(metrics.read_bytes()[: metrics.read_bytes().rfind(b"\n") + 1])
    else:  # the same length, other points
        data = metrics.read_bytes()
        metrics.write_bytes(data.replace(b'"loss":1.0,', b'"loss":2.0,', 1))
    assert_index_matches_the_file(run.path)
    assert cli(["reindex", run.id, "--dir", str(logdir)]) == 0
    assert MetricIndex(run.path).load()
    assert_index_matches_the_file(run.path)


WRITER = """
import sys, time, stepline
run = stepline.init(project="p", dir=sys.argv[1], resume=sys.argv[2] if len(sys.argv) > 2 else None)
print(run.id, flush=True)
step = 0
while True:
    for _ in range(50):
        run.log({"loss": 1 / (step + 1), "tokens": step, "eval/loss": float(step)} if step % 7 == 0
                else {"loss": 1 / (step + 1), "tokens": step}, epoch=step / 100)
        step += 1
    time.sleep(0.001)
"""


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_an_index_that_reads_true(logdir):
    """kill -9 a writer at random moments, resume it each time, and read after each kill and at the end."""
    rng = random.Random(14)
    run_id = None
    for _ in range(6):
        args = [sys.executable, "-c", WRITER, str(logdir)] + ([run_id] if run_id else [])
        env = {**os.environ, "STEPLINE_HEARTBEAT_TIMEOUT": "0.5"}
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        run_id = process.stdout.readline().strip()
        run_path = logdir / "p" / run_id
        metrics = run_path / "metrics.jsonl"
        wait_until(metrics.is_file, 60, "the writer to start writing")
        time.sleep(rng.uniform(0.05, 1.5))  # the moment of the kill: anywhere in the writer's work
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        assert_index_matches_the_file(run_path)
        time.sleep(0.6)  # past the heartbeat timeout: the run reads crashed and may be resumed
    assert_index_matches_the_file(run_path)
    assert cli(["reindex", run_id, "--dir", str(logdir)]) == 0
    assert_index_matches_the_file(run_path)


def test_a_reader_writes_a_large_missing_index_back_unless_someone_keeps_it(logdir):
    run = stepline.init(project="p", dir=logdir)
    for step in range(100_000):  # 10 MB of JSONL: more than a reader reads without writing the index back
        run.log({"loss": step * 0.5, "acc": step % 100}, step=step)
    run.finish()
    shutil_rmtree(run.path / "index")
    holder = f"""
import fcntl, sys, pathlib
folder = pathlib.Path({str(run.path / "index")!r})
folder.mkdir()
handle = open(folder / "lock", "ab")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""
    held = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        assert Logbook(logdir).run(run.id).series("loss").values[-1] == 49_999.5  # read from the JSONL
        assert not (run.path / "index" / "state.json").exists()  # another process holds the lock
    finally:
        held.stdin.close()
        held.wait(timeout=30)
        held.stdout.close()
    assert Logbook(logdir).run(run.id).summaries()["acc"].max == 99
    assert MetricIndex(run.path).load()  # written back: the next reader reads the index
    assert_index_matches_the_file(run.path)


def test_without_the_index_readers_still_answer(logdir, monkeypatch):
    monkeypatch.setenv("STEPLINE_LOGBOOK_INDEX", "0")
    run = stepline.init(project="p", dir=logdir)
    log_a_mixed_run(run, 100)
    run.finish()
    assert not (run.path / "index").exists()
    assert_index_matches_the_file(run.path)


def test_a_failing_index_is_dropped_and_readers_still_get_every_point(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"loss": 0.0}, step=0)
    run.flush()
    shutil_rmtree(run.path / "index")
    (run.path / "index").write_bytes(b"")  # a file where its folder was: no state can be written there
    with pytest.warns(stepline.SteplineWarning, match="index of .* cannot be kept"):
        for step in range(1, 70_000):
            run.log({"loss": float(step)}, step=step)
        assert run.finish()
    assert Logbook(logdir).run(run.id).series("loss").values == [float(s) for s in range(70_000)]
    assert_index_matches_the_file(run.path)


def test_reindex_skips_a_run_whose_writer_keeps_its_index(logdir, capsys):
    run = stepline.init(project="p", dir=logdir)
    run.log({"loss": 1.0})
    run.flush()
    assert cli(["reindex", "--all", "--dir", str(logdir)]) == 0
    assert "skipped, its writer is running" in capsys.readouterr().out
    run.finish()
    assert cli(["reindex", "--all", "--dir", str(logdir)]) == 0
    assert "1 records, 1 points, 1 metrics" in capsys.readouterr().out
    assert cli(["reindex", "--dir", str(logdir)]) == 1
