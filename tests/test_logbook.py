"""The logbook on disk: its reader against damaged files, shared use, hostile names."""

from __future__ import annotations

import pytest

import stepline
from stepline import Logbook
from tests.conftest import start_python


def test_reader_skips_and_counts_torn_and_duplicate_lines(logdir):
    run = stepline.init(project="p", dir=logdir)
    for step in range(3):
        run.log({"x": float(step)}, step=step)
    run.finish()
    metrics = run.path / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    # a write retried after an error repeats its records; a kill -9 tears the last line
    metrics.write_bytes(b"".join(lines[:2] + lines[1:2] + lines[2:]) + b"\n\n" + b'{"type":"metr')
    view = Logbook(logdir).run(run.id)
    assert view.series("x").values == [0.0, 1.0, 2.0]
    assert view.problems == {"torn_lines": 1, "duplicate_records": 1}


def test_runs_projects_and_lookup(logdir):
    a = stepline.init(project="vision", name="resnet", dir=logdir, tags=["cnn"], notes="first try")
    a.finish()
    b = stepline.init(project="nlp", name="bert", dir=logdir)
    b.finish()
    c = stepline.init(project="vision", name="resnet", dir=logdir)  # same name: its own folder
    c.finish()
    book = Logbook(logdir)
    assert book.projects() == ["nlp", "vision"]
    assert [r.id for r in book.runs("vision")] == [a.id, c.id]
    assert len(book.runs()) == 3
    assert book.run("resnet").id == c.id  # a name means its latest run
    assert book.run(a.id).tags == ["cnn"] and book.run(a.id).notes == "first try"
    assert a.path != c.path and a.path.parent == c.path.parent
    with pytest.raises(stepline.RunNotFoundError, match="stepline list"):
        book.run("gpt")


def test_empty_and_missing_logbooks_read_as_empty(tmp_path):
    assert Logbook(tmp_path / "nothing").runs() == []
    assert Logbook(tmp_path / "nothing").projects() == []


def test_metadata_records_the_process(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.finish()
    meta = Logbook(logdir).run(run.id).meta
    for field in ("id", "name", "project", "status", "created_at", "started_at", "ended_at", "heartbeat_at",
                  "host", "pid", "python", "command", "git_commit", "tags", "notes", "error"):
        assert field in meta, field
    assert meta["format"] == 2


def test_git_commit_is_read_from_the_repository(tmp_path, monkeypatch):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("x")
    git = ["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([*git, "pack-refs", "--all"], check=True)  # the branch now lives in packed-refs only
    monkeypatch.chdir(repo)
    run = stepline.init(project="p", dir=tmp_path / "logs")
    run.finish()
    assert Logbook(tmp_path / "logs").run(run.id).meta["git_commit"] == head


def test_two_processes_write_one_logbook_at_once(logdir):
    code = f"""
        import sys, stepline
        run = stepline.init(project="shared", name=sys.argv[1] if len(sys.argv) > 1 else "w", dir={str(logdir)!r})
        for step in range(20_000):
            run.log({{"v": step}}, step=step)
        run.finish()
    """
    processes = [start_python(code) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=60) == 0, process.stderr.read()
    runs = Logbook(logdir).runs("shared")
    assert len(runs) == 2
    for view in runs:
        assert view.status == "finished"
        assert view.series("v").values == list(range(20_000))


HOSTILE = ["../x", "a/b", "a\\b", "nul\x00", "..", ".", "", " pad", "x" * 10_000, "tab\there"]


@pytest.mark.parametrize("bad", HOSTILE)
@pytest.mark.parametrize("field", ["project", "name"])
def test_hostile_names_are_refused_or_kept_as_labels_and_nothing_escapes(tmp_path, bad, field):
    logdir = tmp_path / "inside" / "logbook"
    printable = bad.strip() and bad.isprintable() and len(bad) <= 256
    if field == "name" and printable:  # a run's name is a label: its folder is its id
        run = stepline.init(dir=logdir, name=bad)
        run.finish()
        assert Logbook(logdir).run(run.id).name == bad and run.path == logdir / "default" / run.id
    else:
        with pytest.raises(stepline.InvalidNameError):
            stepline.init(dir=logdir, **{field: bad})
    assert not (tmp_path / "x").exists()
    assert not logdir.exists() or all(p.is_relative_to(logdir) for p in logdir.rglob("*"))


def test_hostile_project_names_in_the_reader(logdir):
    with pytest.raises(stepline.InvalidNameError):
        Logbook(logdir).runs(project="../..")


def test_to_pandas(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.log({"loss": 1.0}, step=0, epoch=0)
    run.log({"loss": 0.5, "acc": 0.7}, step=1, epoch=0)
    run.finish()
    frame = Logbook(logdir).run(run.id).to_pandas()
    assert list(frame["step"]) == [0, 1] and list(frame["loss"]) == [1.0, 0.5]
    assert frame["acc"].isna().tolist() == [True, False]


def test_an_empty_key_is_refused_and_a_misspelled_one_names_the_closest(logdir):
    run = stepline.init(project="p", dir=logdir)
    with pytest.warns(stepline.SteplineWarning, match="metric key '' is refused"):
        run.log({"": 1.0, "train/loss": 0.5})
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert view.metric_keys() == ["train/loss"]
    with pytest.raises(stepline.MetricNotFoundError, match="did you mean 'train/loss'"):
        view.series("train/los")
