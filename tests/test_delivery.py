"""The writer thread: a full queue makes the caller wait (never drop), a broken sink never breaks training."""

from __future__ import annotations

import time
import warnings

import pytest

import stepline
from stepline import Logbook, events
from stepline.config import DEFAULT_QUEUE_SIZE
from stepline.sinks import LogbookSink, Sink
from stepline.writer import Writer


class SlowSink(Sink):
    name = "slow"

    def write(self, records):
        time.sleep(0.01)


class FlakySink(Sink):
    """Fails with an OS error for its first calls, as a full disk or a dropped mount would."""

    name = "flaky"

    def __init__(self, inner: Sink, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def write(self, records):
        if self.failures:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        self.inner.write(records)

    def flush(self):
        self.inner.flush()

    def close(self):
        self.inner.close()


class BuggySink(Sink):
    name = "buggy"

    def write(self, records):
        raise KeyError("a bug in a sink")


def test_a_full_queue_makes_the_caller_wait_with_one_warning_and_drops_nothing(logdir, monkeypatch):
    monkeypatch.setenv("STEPLINE_QUEUE_SIZE", "50")
    run = stepline.init(project="p", dir=logdir)
    run._writer._sinks.append(SlowSink())  # the logbook sink plus a slow one: the queue fills up
    with pytest.warns(stepline.SteplineWarning, match="queue is full") as caught:
        for step in range(2_000):
            run.log({"x": step}, step=step)
    assert len([w for w in caught if "queue is full" in str(w.message)]) == 1
    run.finish()
    assert Logbook(logdir).run(run.id).series("x").values == list(range(2_000))


def test_passing_os_errors_are_retried_and_nothing_is_lost(logdir):
    run = stepline.init(project="p", dir=logdir)
    # Swap the run's logbook sink for the same sink behind three failures.
    sinks = run._writer._sinks
    sinks[0] = FlakySink(sinks[0], failures=3)
    with pytest.warns(stepline.SteplineWarning, match="No space left"):
        for step in range(100):
            run.log({"x": step}, step=step)
        run.finish()
    assert Logbook(logdir).run(run.id).series("x").values == list(range(100))


def test_a_buggy_sink_is_switched_off_and_the_others_go_on(logdir):
    run = stepline.init(project="p", dir=logdir)
    run._writer._sinks.insert(0, BuggySink())
    with pytest.warns(stepline.SteplineWarning, match="buggy sink failed"):
        for step in range(10):
            run.log({"x": step}, step=step)
        run.finish()
    assert Logbook(logdir).run(run.id).series("x").values == list(range(10))


def test_flush_makes_points_readable_while_the_run_goes_on(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"x": 1.0})
    assert run.flush(timeout=10)
    view = Logbook(logdir).run(run.id)
    assert view.series("x").values == [1.0] and view.status == "running"
    run.finish()


def test_points_reach_disk_within_a_second_without_flush(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"x": 1.0})
    deadline = time.time() + 1.0
    while not Logbook(logdir).run(run.id).metrics() and time.time() < deadline:
        time.sleep(0.01)
    assert Logbook(logdir).run(run.id).series("x").values == [1.0]
    run.finish()


def test_records_are_numbered_across_types_in_order(logdir):
    run = stepline.init(project="p", dir=logdir, config={"a": 1})
    run.log({"x": 1})
    run.info("hello")
    run.log({"x": 2})
    run.finish()
    view = Logbook(logdir).run(run.id)
    seqs = sorted(r["seq"] for kind in (events.PARAMS, events.METRICS, events.LOG) for r in view.records(kind))
    assert seqs == [1, 2, 3, 4]


def test_heartbeat_is_refreshed_while_running(logdir):
    run = stepline.init(project="p", dir=logdir)
    first = Logbook(logdir).run(run.id).heartbeat_at
    writer = Writer([LogbookSink(run.path, Logbook(logdir).run(run.id).meta)], first_seq=100,
                    max_queue=DEFAULT_QUEUE_SIZE, label="hb", heartbeat_interval=0.05)
    time.sleep(0.3)
    writer.close(5)
    assert Logbook(logdir).run(run.id).heartbeat_at > first
    run.finish()


def test_no_warning_in_a_normal_run(logdir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = stepline.init(project="p", dir=logdir, config={"lr": 0.1})
        for step in range(1000):
            run.log({"loss": 1 / (step + 1)})
        run.finish()
