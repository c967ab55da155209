"""A run ends with the right status however its process ends: real subprocesses, real signals."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

import stepline
from stepline import Logbook
from tests.conftest import run_python, start_python

LOGGING_FOREVER = """
    import faulthandler, signal, sys, time, stepline
    faulthandler.register(signal.SIGUSR1)  # the test asks for every thread's stack if the process hangs
    # As in a terminal: a shell that starts a job in the background (CI's may) leaves SIGINT ignored, and
    # Python then installs no KeyboardInterrupt for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run = stepline.init(project="p", name="victim", dir=sys.argv[1] if len(sys.argv) > 1 else {dir!r})
    print(run.id, flush=True)
    step = 0
    while True:
        run.log({{"step_value": step}}, step=step)
        step += 1
        time.sleep(0.001)
"""


def exited_within(process, seconds: float) -> None:
    """Wait for ``process`` to exit; if it hangs, fail with every one of its threads' stacks."""
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        process.kill()
        _, stderr = process.communicate(timeout=30)
        raise AssertionError(f"the process did not exit within {seconds} s; its threads:\n{stderr}") from None


def only_run(logdir):
    [view] = Logbook(logdir).runs()
    return view


def test_normal_exit_finishes_the_run(logdir):
    result = run_python(f"""
        import stepline
        run = stepline.init(project="p", dir={str(logdir)!r})
        run.log({{"x": 1}})
    """)
    assert result.returncode == 0, result.stderr
    view = only_run(logdir)
    assert view.status == "finished" and view.series("x").values == [1]


def test_uncaught_exception_fails_the_run_with_its_traceback(logdir):
    result = run_python(f"""
        import stepline
        run = stepline.init(project="p", dir={str(logdir)!r})
        run.log({{"x": 1}})
        def train():
            raise RuntimeError("CUDA out of memory")
        train()
    """)
    assert result.returncode == 1 and "CUDA out of memory" in result.stderr  # the user's traceback still shows
    view = only_run(logdir)
    assert view.status == "failed"
    assert view.error["type"] == "RuntimeError" and view.error["message"] == "CUDA out of memory"
    assert "in train" in view.error["traceback"]
    assert view.series("x").values == [1]


def test_context_manager_and_decorator(logdir):
    with pytest.raises(ValueError):
        with stepline.init(project="p", dir=logdir, name="ctx") as run:
            run.log({"x": 1})
            raise ValueError("bad batch")

    decorated = stepline.init(project="p", dir=logdir, name="deco")

    @decorated
    def train():
        decorated.log({"y": 2})
        return "done"

    assert train() == "done"
    book = Logbook(logdir)
    ctx = book.run("ctx")
    assert ctx.status == "failed" and ctx.error["message"] == "bad batch"
    assert book.run("deco").status == "finished" and book.run("deco").series("y").values == [2]


def test_keyboard_interrupt_in_a_context_is_killed(logdir):
    with pytest.raises(KeyboardInterrupt):
        with stepline.init(project="p", dir=logdir):
            raise KeyboardInterrupt
    assert only_run(logdir).status == "killed"


def test_fail_records_a_message(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.fail("diverged: loss is NaN")
    view = only_run(logdir)
    assert view.status == "failed" and view.error["message"] == "diverged: loss is NaN"
    assert view.ended_at >= view.started_at


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, "killed"), (signal.SIGINT, "killed")])
def test_signals_end_the_run_as_killed_and_keep_the_points(logdir, signum, status):
    process = start_python(LOGGING_FOREVER.format(dir=str(logdir)))
    run_id = process.stdout.readline().strip()
    time.sleep(1.5)
    process.send_signal(signum)
    exited_within(process, 30)
    if signum == signal.SIGTERM:
        assert process.returncode == -signal.SIGTERM  # it still dies of the signal, as it would have
    view = Logbook(logdir).run(run_id)
    assert view.status == status
    steps = view.series("step_value").steps
    assert len(steps) > 100 and steps == list(range(len(steps)))


def test_sigterm_chains_to_the_handler_the_user_installed(logdir):
    result_file = logdir.parent / "handled"
    process = start_python(f"""
        import signal, sys, time, stepline
        def handler(signum, frame):
            open({str(result_file)!r}, "w").write("handled")
            sys.exit(0)
        signal.signal(signal.SIGTERM, handler)
        run = stepline.init(project="p", dir={str(logdir)!r})
        print(run.id, flush=True)
        while True:
            time.sleep(0.01)
    """)
    process.stdout.readline()
    time.sleep(0.5)
    process.terminate()
    process.wait(timeout=30)
    assert result_file.read_text() == "handled"
    assert only_run(logdir).status == "killed"


@pytest.mark.slow
def test_kill_9_loses_nothing_logged_a_second_before_and_reads_as_crashed(logdir):
    process = start_python(LOGGING_FOREVER.format(dir=str(logdir)))
    run_id = process.stdout.readline().strip()
    time.sleep(2.5)
    cutoff = time.time() - 1.0
    process.kill()
    process.wait(timeout=30)

    view = Logbook(logdir, heartbeat_timeout=60).run(run_id)
    assert view.status == "running"  # the heartbeat is fresh: a reader cannot know yet
    series = view.series("step_value")
    logged_before_cutoff = [t for t in series.times if t <= cutoff]
    assert len(logged_before_cutoff) > 100
    # No hole, and the last point landed is younger than the cutoff: every point logged before it is there.
    assert series.steps == list(range(len(series.steps)))
    assert series.times[-1] >= cutoff
    time.sleep(1.1)
    assert Logbook(logdir, heartbeat_timeout=1.0).run(run_id).status == "crashed"


def test_resume_continues_steps_sequence_and_params(logdir):
    run = stepline.init(project="p", name="long", dir=logdir, config={"lr": 0.1})
    run.log({"loss": 1.0})
    run.log({"loss": 0.9})
    run.fail("preempted")

    resumed = stepline.init(project="p", dir=logdir, resume="long", config={"lr": 0.05})
    assert resumed.id == run.id and resumed.params.read() == {"lr": 0.05}
    resumed.log({"loss": 0.8})
    resumed.finish()

    view = Logbook(logdir).run(run.id)
    assert view.status == "finished" and view.error is None
    assert view.series("loss").steps == [0, 1, 2]
    assert view.params() == {"lr": 0.05}
    assert len(view.meta["resumed_at"]) == 1
    seqs = [r["seq"] for kind in ("params", "metrics") for r in view.records(kind)]
    assert len(seqs) == len(set(seqs))


def test_resume_true_starts_fresh_when_there_is_nothing_to_resume(logdir):
    first = stepline.init(project="p", name="auto", dir=logdir, resume=True)
    first.log({"a": 1})
    first.finish()
    again = stepline.init(project="p", name="auto", dir=logdir, resume=True)
    assert again.id == first.id
    again.finish()


def test_resume_of_an_unknown_run_says_how_to_start_one(logdir):
    with pytest.raises(stepline.RunNotFoundError, match="resume"):
        stepline.init(project="p", dir=logdir, resume="nope")


def test_resume_from_environment(logdir, monkeypatch):
    run = stepline.init(project="p", name="env", dir=logdir)
    run.finish()
    monkeypatch.setenv("STEPLINE_RESUME", run.id)
    assert stepline.init(project="p", dir=logdir).id == run.id


def test_resuming_a_run_that_is_still_alive_elsewhere_is_refused(logdir):
    process = start_python(LOGGING_FOREVER.format(dir=str(logdir)))
    try:
        run_id = process.stdout.readline().strip()
        with pytest.raises(stepline.ConfigError, match="still running"):
            stepline.init(project="p", dir=logdir, resume=run_id)
    finally:
        process.kill()
        process.wait()


def test_resume_after_a_torn_line_starts_on_a_fresh_line(logdir):
    run = stepline.init(project="p", name="torn", dir=logdir)
    run.log({"a": 1.0})
    run.finish()
    with open(run.path / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"type":"metrics","seq":99,"ti')  # what a kill -9 mid-write leaves
    resumed = stepline.init(project="p", dir=logdir, resume=run.id)
    resumed.log({"a": 2.0})
    resumed.finish()
    view = Logbook(logdir).run(run.id)
    assert view.series("a").values == [1.0, 2.0]
    assert view.problems["torn_lines"] == 1


def test_fork_child_does_not_block_on_the_parents_queue(logdir):
    result = run_python(f"""
        import os, stepline
        run = stepline.init(project="p", dir={str(logdir)!r}, name="parent")
        pid = os.fork()
        if pid == 0:
            for i in range(100_000):   # more than the queue holds: would block for ever without care
                run.log({{"child": i}})
            os._exit(0)
        os.waitpid(pid, 0)
        run.log({{"parent": 1}})
        run.finish()
    """, env={"STEPLINE_QUEUE_SIZE": "1000"})
    assert result.returncode == 0, result.stderr
    view = only_run(logdir)
    assert view.status == "finished" and view.metric_keys() == ["parent"]


def test_resume_by_id_finds_the_run_in_its_project_and_the_hint_after_finish_works(logdir):
    run = stepline.init(project="vision", name="long", dir=logdir)
    run.log({"loss": 1.0}, step=1)
    run.finish()
    with pytest.warns(stepline.SteplineWarning, match=rf"stepline.init\(resume={run.id!r}\)"):
        run.log({"loss": 0.5}, step=2)  # after finish(): refused, with the hint used below
    again = stepline.init(resume=run.id, dir=logdir)  # no project: ids are unique in the logbook
    assert again.project == "vision" and again.id == run.id
    again.log({"loss": 0.5})
    again.finish()
    assert Logbook(logdir).run(run.id).series("loss").steps == [1, 2]
    with pytest.raises(stepline.RunNotFoundError):
        stepline.init(project="other", resume=run.id, dir=logdir)  # a project given is a project meant
