"""Pushing runs to LMTracker: to a protocol double that enforces its rules, and to stepline's own routes."""

from __future__ import annotations

import math
import subprocess
import sys
from urllib.parse import quote

import pytest

import stepline
from stepline import Logbook
from tests.conftest import wait_until
from tests.server.lmtracker_double import PASSWORD, LMTrackerDouble


@pytest.fixture
def double():
    instance = LMTrackerDouble()
    yield instance
    instance.stop()


def log_train_and_eval(run):
    for step in range(1, 21):
        run.log({"train/loss": 1 / step, "train/lr": 0.1}, step=step)
        if step % 5 == 0:
            run.log({"eval/loss": 2 / step}, step=step)
    run.log({"train/loss": math.nan, "train/lr": 0.1}, step=21)  # JSON has no NaN: left out, with a warning


def test_each_key_set_is_an_lmtracker_run_and_its_schema_check_never_fires(double, logdir):
    with pytest.warns(stepline.SteplineWarning, match="NaN"):
        run = stepline.init(project="vision", name="bert", dir=logdir, backend=double.backend, config={"lr": 0.1})
        log_train_and_eval(run)
        assert run.finish(timeout=30)
    runs = double.app.state.projects["vision"]
    assert sorted(runs) == ["bert", "bert.2"]
    train, evaluation = runs["bert"]["metrics"], runs["bert.2"]["metrics"]
    assert [p["step"] for p in train] == list(range(1, 21)) and train[0] == {"step": 1, "train/loss": 1.0,
                                                                             "train/lr": 0.1}
    assert evaluation == [{"step": s, "eval/loss": 2 / s} for s in (5, 10, 15, 20)]


def test_the_machine_s_figures_are_left_out_with_one_warning(double, logdir):
    with pytest.warns(stepline.SteplineWarning, match="machine figures") as said:
        run = stepline.init(project="vision", name="bert", dir=logdir, backend=double.backend,
                            system_metrics=True, system_interval=0.1)
        for step in range(1, 6):
            run.log({"train/loss": 1 / step}, step=step)
        view = Logbook(logdir).run(run.id)
        wait_until(lambda: run.flush() and len([r for r in view.metrics() if "system/cpu.percent" in r]) >= 2, 60,
                   "two samples of the machine")
        assert run.finish(timeout=30)
    assert len([w for w in said if "machine figures" in str(w.message)]) == 1
    assert list(double.app.state.projects["vision"]) == ["bert"]  # no LMTracker run of system keys
    assert [p["step"] for p in double.app.state.projects["vision"]["bert"]["metrics"]] == [1, 2, 3, 4, 5]


def test_sync_after_a_restart_sends_only_what_lmtracker_lacks(double, logdir):
    offline = stepline.init(project="vision", name="later", dir=logdir)
    for step in range(10):
        offline.log({"x": float(step)}, step=step)
    offline.finish()
    for _ in range(2):  # the second run of sync finds every point there and sends none
        result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", "later", "--dir", str(logdir),
                                 "--remote", double.backend], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert [p["x"] for p in double.app.state.projects["vision"]["later"]["metrics"]] == [float(s) for s in range(10)]


def test_wrong_credentials_are_one_clear_error(double, logdir):
    wrong = double.backend.replace(quote(PASSWORD, safe=""), "nope")
    with pytest.warns(stepline.SteplineWarning, match="401") as caught:
        run = stepline.init(project="vision", dir=logdir, backend=wrong)
        run.log({"x": 1.0})
        run.finish(timeout=10)
    assert not any("nope" in str(w.message) for w in caught)  # no message shows the password
    assert "vision" not in double.app.state.projects
    assert Logbook(logdir).run(run.id).series("x").values == [1.0]


def test_a_password_lmtracker_cannot_take_is_refused_at_init(logdir):
    with pytest.raises(stepline.ConfigError, match="at every ':'") as caught:
        stepline.init(project="p", dir=logdir, backend="lmtracker+http://ana:pa%3Ass@127.0.0.1:8683")
    assert "pa:ss" not in str(caught.value) and "pa%3Ass" not in str(caught.value)


def test_pushing_to_stepline_s_own_lmtracker_routes(server, tmp_path, logdir):
    target = tmp_path / "server-logbook"
    subprocess.run([sys.executable, "-m", "stepline.cli.main", "server", "user", "add", "ana", "--password-stdin",
                    "--dir", str(target)], input="pw\n", text=True, check=True, capture_output=True)
    process = server(root=target)
    backend = f"lmtracker+http://ana:pw@127.0.0.1:{process.port}"
    with pytest.warns(stepline.SteplineWarning):
        run = stepline.init(project="vision", name="bert", dir=logdir, backend=["local", backend])
        log_train_and_eval(run)
        assert run.finish(timeout=30)
    book = Logbook(target)
    assert sorted(r.name for r in book.runs("vision")) == ["bert", "bert.2"]
    assert book.run("bert", project="vision").series("train/loss").steps == list(range(1, 21))
    assert book.run("bert.2", project="vision").series("eval/loss").steps == [5, 10, 15, 20]


def test_a_bad_lmtracker_url_is_a_clear_error(logdir):
    with pytest.raises(stepline.ConfigError, match="user:password"):
        stepline.init(project="p", dir=logdir, backend="lmtracker+http://127.0.0.1:8683")
