"""The machine's figures under system/: sampled by a thread of the run with the real psutil (and NVIDIA's library,
which finds no driver here), read back through the logbook reader. (The other tests run without them:
tests/conftest.py sets STEPLINE_SYSTEM_METRICS=0, which system_metrics=True overrides.)"""

from __future__ import annotations

import sys
import threading
import time

import pytest

import stepline
from stepline import ConfigError, Logbook
from stepline.machine import NvidiaReader, StandardLibraryReader, machine_readers
from stepline.sampler import SystemSampler
from tests.conftest import wait_until

PSUTIL_KEYS = {"system/cpu.process_percent", "system/cpu.percent", "system/memory.process_rss_mb",
               "system/memory.used_mb", "system/memory.available_mb", "system/disk.read_mb_per_s",
               "system/disk.write_mb_per_s", "system/network.sent_mb_per_s", "system/network.received_mb_per_s"}


def system_rows(view):
    return [row for row in view.metrics() if any(key.startswith("system/") for key in row)]


def has_gpu() -> bool:
    return any(isinstance(reader, NvidiaReader) for reader in machine_readers())


def test_a_run_records_the_machine_under_system_and_leaves_the_training_steps_alone(logdir):
    run = stepline.init(project="p", dir=logdir, system_metrics=True, system_interval=0.2)
    view = Logbook(logdir).run(run.id)
    step = 0
    while len(system_rows(view)) < 3:  # training goes on until the sampler took three samples
        run.log({"loss": 1 / (step + 1)})
        step += 1
        time.sleep(0.02)
        run.flush()
        assert step < 5000, "no samples of the machine in 100 s"
    run.finish()
    rows = Logbook(logdir).run(run.id).metrics()
    assert [row["step"] for row in rows if "loss" in row] == list(range(step))  # auto steps as without it
    samples = system_rows(Logbook(logdir).run(run.id))
    for sample in samples:
        keys = {key for key in sample if key.startswith("system/")}
        assert PSUTIL_KEYS <= keys and (has_gpu() or not any(key.startswith("system/gpu.") for key in keys))
        assert 1 < sample["system/memory.process_rss_mb"] < 100_000
        assert sample["system/memory.available_mb"] > 0 and 0 <= sample["system/cpu.percent"] <= 100
        assert 0 <= sample["step"] < step  # the step training had reached
    times = [sample["timestamp"] for sample in samples]
    assert all(later - earlier >= 0.15 for earlier, later in zip(times, times[1:]))
    assert not [t for t in threading.enumerate() if t.name.startswith("stepline-system")]


def test_a_short_run_gets_one_last_sample_at_finish(logdir):
    run = stepline.init(project="p", dir=logdir, system_metrics=True)  # the default interval, 10 s: longer
    run.log({"loss": 1.0})
    time.sleep(1.2)
    run.finish()
    [sample] = system_rows(Logbook(logdir).run(run.id))
    assert PSUTIL_KEYS <= set(sample) and sample["step"] == 0


def test_off_by_init_and_by_environment_and_bad_settings_name_the_fix(logdir, monkeypatch):
    monkeypatch.delenv("STEPLINE_SYSTEM_METRICS")  # on, as for a user
    quiet = stepline.init(project="p", dir=logdir, system_metrics=False, system_interval=0.1)
    time.sleep(1.2)
    quiet.finish()
    monkeypatch.setenv("STEPLINE_SYSTEM_METRICS", "0")
    also_quiet = stepline.init(project="p", dir=logdir, system_interval=0.1)
    time.sleep(1.2)
    also_quiet.finish()
    book = Logbook(logdir)
    assert system_rows(book.run(quiet.id)) == [] and system_rows(book.run(also_quiet.id)) == []
    monkeypatch.setenv("STEPLINE_SYSTEM_METRICS", "sometimes")
    with pytest.raises(ConfigError, match="STEPLINE_SYSTEM_METRICS"):
        stepline.init(project="p", dir=logdir)
    monkeypatch.setenv("STEPLINE_SYSTEM_METRICS", "1")
    monkeypatch.setenv("STEPLINE_SYSTEM_INTERVAL", "often")
    with pytest.raises(ConfigError, match="STEPLINE_SYSTEM_INTERVAL"):
        stepline.init(project="p", dir=logdir)
    monkeypatch.delenv("STEPLINE_SYSTEM_INTERVAL")
    with pytest.raises(ConfigError, match="system_interval"):
        stepline.init(project="p", dir=logdir, system_interval=0)


def test_without_psutil_the_standard_library_s_figures_are_recorded_and_it_says_what_is_missing(logdir,
                                                                                                 monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now fails, as where it is not installed
    monkeypatch.setattr("stepline.machine._SAID", set())
    with pytest.warns(stepline.SteplineWarning, match=r"pip install 'stepline\[system\]'"):
        run = stepline.init(project="p", dir=logdir, system_metrics=True, system_interval=0.2)
        view = Logbook(logdir).run(run.id)
        wait_until(lambda: run.flush() and len(system_rows(view)) >= 2, 60, "two samples")
        run.finish()
    for sample in system_rows(Logbook(logdir).run(run.id)):
        keys = {key for key in sample if key.startswith("system/")}
        assert {"system/cpu.process_percent", "system/memory.process_peak_rss_mb"} <= keys
        assert not keys & {"system/memory.used_mb", "system/cpu.percent"}
        assert sample["system/memory.process_peak_rss_mb"] > 1


def test_a_resumed_run_goes_on_from_the_training_s_steps_and_samples_again(logdir):
    run = stepline.init(project="p", name="long", dir=logdir, system_metrics=True, system_interval=0.2)
    view = Logbook(logdir).run(run.id)
    for step in range(5):
        run.log({"loss": float(step)})
    wait_until(lambda: run.flush() and len(system_rows(view)) >= 1, 60, "a sample")
    run.finish()
    again = stepline.init(project="p", name="long", dir=logdir, resume=True, system_metrics=True,
                          system_interval=0.2)
    again.log({"loss": 5.0})
    wait_until(lambda: again.flush() and len(system_rows(view)) >= 3, 60, "samples of the resumed run")
    again.finish()
    rows = Logbook(logdir).run(run.id).metrics()
    assert [row["step"] for row in rows if "loss" in row] == [0, 1, 2, 3, 4, 5]
    assert all(row["step"] <= 5 for row in system_rows(Logbook(logdir).run(run.id)))


def test_a_failing_reader_is_said_once_and_left_out_while_the_others_go_on():
    class Broken:
        def read(self):
            raise RuntimeError("sensor gone")

    samples: list[dict[str, float]] = []
    with pytest.warns(stepline.SteplineWarning, match="sensor gone") as said:
        sampler = SystemSampler(samples.append, 0.1, label="t", readers=[Broken(), StandardLibraryReader()])
        wait_until(lambda: len(samples) >= 3, 60, "three samples")
        sampler.stop()
    assert len([w for w in said if "sensor gone" in str(w.message)]) == 1
    assert all("system/memory.process_peak_rss_mb" in sample for sample in samples)


def test_a_machine_without_an_nvidia_driver_gets_no_gpu_reader_and_no_message(recwarn):
    pytest.importorskip("pynvml")
    readers = machine_readers()
    if has_gpu():
        pytest.skip("this machine has an NVIDIA GPU: its figures are checked by the first test")
    assert not any(isinstance(reader, NvidiaReader) for reader in readers)
    assert not [w for w in recwarn if "GPU" in str(w.message) or "NVML" in str(w.message)]
