"""Configuration by arguments and STEPLINE_* variables; disabled mode; ranks; the cost of `import stepline`."""

from __future__ import annotations

import json

import pytest

import stepline
from stepline import Logbook
from tests.conftest import run_python


def test_environment_variables_configure_the_run(logdir, monkeypatch, tmp_path):
    monkeypatch.setenv("STEPLINE_DIR", str(logdir))
    monkeypatch.setenv("STEPLINE_PROJECT", "from-env")
    monkeypatch.setenv("STEPLINE_RUN_NAME", "env-name")
    run = stepline.init()
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert (view.project, view.name) == ("from-env", "env-name")
    # an argument wins over its variable
    other = stepline.init(project="arg", name="arg-name")
    other.finish()
    assert Logbook(logdir).run(other.id).project == "arg"


def test_default_logbook_is_stepline_logs_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = stepline.init(project="p")
    run.finish()
    assert run.path.parent.parent.resolve() == (tmp_path / "stepline_logs").resolve()
    assert Logbook().run(run.id).status == "finished"


def test_disabled_mode_records_nothing_and_every_call_works(logdir, monkeypatch):
    monkeypatch.setenv("STEPLINE_MODE", "disabled")
    run = stepline.init(project="p", dir=logdir, config={"a": 1})
    run.log({"x": 1.0}, step=0)
    run.metrics("train").log(loss=0.1)
    run.metrics.collect(x=1)
    run.metrics.flush()
    run.params.update("b", 2)
    run.info("hello")
    run.files.save({"a": 1}, "r.json")
    stepline.log({"y": 2})
    assert run.flush() and run.finish()
    assert run.params.read() == {"a": 1, "b": 2}
    assert not logdir.exists()


@pytest.mark.parametrize("variable", ["RANK", "SLURM_PROCID", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK"])
def test_ranks_other_than_zero_record_nothing_unless_asked(logdir, monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    run = stepline.init(project="p", dir=logdir)
    run.log({"x": 1})
    run.finish()
    assert not logdir.exists()
    anyway = stepline.init(project="p", dir=logdir, all_ranks=True)
    anyway.log({"x": 1})
    anyway.finish()
    assert Logbook(logdir).run(anyway.id).series("x").values == [1]


def test_rank_zero_records(logdir, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    run = stepline.init(project="p", dir=logdir)
    run.finish()
    assert Logbook(logdir).run(run.id).status == "finished"


@pytest.mark.parametrize(
    "variable, value, fragment",
    [("STEPLINE_MODE", "loud", "STEPLINE_MODE"), ("STEPLINE_QUEUE_SIZE", "-3", "STEPLINE_QUEUE_SIZE"),
     ("STEPLINE_PROJECT", "../up", "project"), ("STEPLINE_HEARTBEAT_TIMEOUT", "soon", "STEPLINE_HEARTBEAT_TIMEOUT")],
)
def test_bad_settings_name_the_variable(logdir, monkeypatch, variable, value, fragment):
    monkeypatch.setenv(variable, value)
    with pytest.raises(stepline.ConfigError, match=fragment):
        stepline.init(dir=logdir)
        Logbook(logdir)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"backend": "wandb"}, "backend"), ({"tags": "one"}, "tags"), ({"notes": 3}, "notes"),
    ({"resume": 3.5}, "resume"),
])
def test_bad_arguments_name_the_field(logdir, kwargs, fragment):
    with pytest.raises(stepline.ConfigError, match=fragment):
        stepline.init(project="p", dir=logdir, **kwargs)


def test_import_pulls_in_no_framework_and_is_fast():
    heavy = ["torch", "transformers", "lightning", "keras", "numpy", "pandas", "fastapi", "uvicorn"]
    result = run_python(f"""
        import json, sys, time
        start = time.perf_counter()
        import stepline
        elapsed = time.perf_counter() - start
        print(json.dumps({{"loaded": [m for m in {heavy!r} if m in sys.modules], "ms": elapsed * 1000}}))
    """)
    report = json.loads(result.stdout)
    assert report["loaded"] == []
    assert report["ms"] < 1000  # a loose guard against a heavy import; the figure is measured in the note


def test_public_errors_share_one_base():
    for name in ("ConfigError", "InvalidNameError", "InvalidValueError", "RunNotFoundError", "LogbookError"):
        assert issubclass(getattr(stepline, name), stepline.SteplineError)


def test_an_unwritable_logbook_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(stepline.LogbookError, match="cannot create"):
        stepline.init(project="p", dir=blocker)


def test_a_run_name_is_a_label_and_a_project_name_a_folder_name(logdir):
    for name in ("bert/lr=1e-3", "a:b", "résumé ✓", 'what? "yes" <no> | *'):
        run = stepline.init(project="p", name=name, dir=logdir)
        run.finish()
        assert Logbook(logdir).run(run.id).name == name
    for bad in ("line\nbreak", "tab\there", "\x7f", " "):
        with pytest.raises(stepline.InvalidNameError, match="run name"):
            stepline.init(project="p", name=bad, dir=logdir)
    with pytest.raises(stepline.InvalidNameError) as caught:
        stepline.init(project="team/vision", dir=logdir)
    assert "'/'" in str(caught.value) and 'any text but / \\ : * ? " < > |' in str(caught.value)
    stepline.init(project="lr=1e-3", dir=logdir).finish()  # '=' is fine, as the message says
    with pytest.raises(stepline.InvalidNameError, match="bytes long in UTF-8"):
        stepline.init(project="é" * 128, dir=logdir)
