"""Storage faults that do not go away: training finishes, keeps what can be kept, and says what is lost.

Each training script runs in a process of its own with a time limit, so a hang fails the test instead of
hanging the suite. The disk-full and read-only cases need root (a small tmpfs, a read-only bind mount).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepline import Logbook
from tests.conftest import REPO, run_python

pytestmark = pytest.mark.slow


def as_root_mount(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs or a read-only bind needs root")
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} failed here: {result.stderr.strip()}")


@pytest.fixture
def mounts():
    made = []
    yield made
    for target in reversed(made):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


TRAIN = """
    import os, sys, time, warnings, stepline
    warnings.simplefilter("always")
    run = stepline.init(project="p", name="faulty", dir={logdir!r})
    print(run.path, flush=True)
    started = time.monotonic()
    for step in range({steps}):
        run.log({{"a": step, "b": step * 0.5, "c": 1.0, "d": 2.0}}, step=step)
        if step == {fault_at}:
            run.flush()
            print("fault", flush=True)
            sys.stdin.readline()  # the test makes the fault, then lets training go on
    {after}
    print("finish returned", run.finish(), round(time.monotonic() - started, 1), flush=True)
"""


def train_through(logdir, fault, steps=60_000, fault_at=1_000, timeout=240, after='run.info("after the fault")'):
    """Run TRAIN, calling ``fault(run_path)`` when it pauses; its (stdout, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(TRAIN.format(logdir=str(logdir), steps=steps, fault_at=fault_at,
                                                                 after=after))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "STEPLINE_MAX_BACKLOG_MB": "4"})
    try:
        run_path = Path(process.stdout.readline().strip())
        assert process.stdout.readline().strip() == "fault", process.stderr.read()[-3000:]
        fault(run_path)
    except BaseException:
        process.kill()
        process.wait()
        raise
    try:
        out, err = process.communicate("go\n", timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("training hung on a storage fault") from None
    assert process.returncode == 0, err[-3000:]
    assert "finish returned" in out, err[-3000:]
    return run_path, out, err


def test_a_disk_full_for_good(tmp_path, mounts):
    disk = tmp_path / "disk"
    disk.mkdir()
    as_root_mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk))
    mounts.append(disk)
    logdir = disk / "logbook"

    def fill(run_path):
        with open(disk / "ballast", "wb") as ballast:  # what is left of the disk, taken
            try:
                while True:
                    ballast.write(b"\0" * 65536)
                    ballast.flush()
            except OSError:
                pass

    run_path, out, err = train_through(logdir, fill)
    assert "finish returned False" in out  # finish() returns, and says not everything landed
    assert "cannot write" in err and "No space left on device" in err
    assert "records of this run are lost" in err and "metrics and log lines are dropped" in err
    view = Logbook(logdir).run(run_path.name)
    assert view.series("a").steps[:1001] == list(range(1001))  # all that landed before the fault is readable


def read_only(logdir, mounts):
    """A fault maker: ``logdir`` bound onto itself read-only; files open for writing stay writable."""

    def make(run_path):
        as_root_mount("--bind", str(logdir), str(logdir))
        mounts.append(logdir)
        as_root_mount("-o", "remount,bind,ro", str(logdir))

    return make


def test_a_read_only_folder_for_good(tmp_path, mounts):
    logdir = tmp_path / "logbook"
    run_path, out, err = train_through(logdir, read_only(logdir, mounts), steps=20_000)
    # The open metrics file still took every point; the log line needed a new file, and is lost with the
    # status behind it, as the warnings say.
    assert "cannot write" in err and "Read-only file system" in err, err
    assert "2 records of this run are lost" in err
    assert Logbook(logdir).run(run_path.name).series("a").steps == list(range(20_000))


def test_a_read_only_folder_keeps_the_points_and_says_the_status_cannot_be_written(tmp_path, mounts, monkeypatch):
    monkeypatch.setenv("STEPLINE_HEARTBEAT_INTERVAL", "0.1")  # meta.json is rewritten every tenth of a second
    logdir = tmp_path / "logbook"
    run_path, out, err = train_through(logdir, read_only(logdir, mounts), steps=20_000, after="")
    assert "cannot update" in err and "Read-only file system" in err and "finish returned False" in out
    assert "the run's status could not be written" in err
    assert Logbook(logdir).run(run_path.name).series("a").steps == list(range(20_000))


def test_the_run_folder_deleted_mid_run(tmp_path):
    import shutil

    logdir = tmp_path / "logbook"
    run_path, out, err = train_through(logdir, shutil.rmtree, steps=5_000)
    assert "finish returned True" in out
    assert "was deleted while the run was writing" in err
    view = Logbook(logdir).run(run_path.name)
    steps = view.series("a").steps
    assert steps == list(range(steps[0], 5_000)) and steps[0] > 1_000  # everything written after it is back
    assert view.status == "finished" and [line["message"] for line in view.logs()] == ["after the fault"]


def test_a_file_and_a_folder_of_the_same_name(logdir):
    result = run_python(f"""
        import warnings, stepline
        warnings.simplefilter("always")
        run = stepline.init(project="p", dir={str(logdir)!r})
        run.files.save(b"1", "a")
        run.files.save(b"2", "a/b")
        run.log({{"x": 1.0}})
        print("finish returned", run.finish())
    """, timeout=120)
    assert "finish returned True" in result.stdout, result.stderr
    assert "'a/b' cannot be kept in the run" in result.stderr
    [view] = Logbook(logdir).runs("p")
    assert view.files() == ["a"] and view.series("x").values == [1.0] and view.status == "finished"
