"""The stepline command line, run as a user runs it: a real subprocess on a real logbook."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import subprocess
import sys

import stepline


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stepline.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


def make_run(logdir):
    run = stepline.init(project="vision", name="resnet", dir=logdir, config={"lr": 0.1, "nan": math.nan},
                        tags=["cnn"])
    for step, loss in enumerate([1.0, 0.25, 0.5]):
        run.log({"train/loss": loss, "train/acc": step / 10}, step=step * 10, epoch=step)
    run.log({"eval/acc": math.nan}, step=20)
    run.finish()
    return run


def test_list_shows_every_run(logdir):
    run = make_run(logdir)
    failed = stepline.init(project="nlp", name="bert", dir=logdir)
    failed.fail("boom")
    result = cli("list", "--dir", str(logdir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PROJECT", "ID", "NAME", "STATUS", "STARTED", "DURATION", "STEPS", "LAST", "VALUES"]
    resnet = next(line for line in lines if run.id in line)
    assert "vision" in resnet and "finished" in resnet and "train/loss=0.5" in resnet
    assert " 4 " in resnet  # log calls
    assert any("bert" in line and "failed" in line for line in lines)
    only = cli("list", "--dir", str(logdir), "--project", "nlp").stdout
    assert "bert" in only and "resnet" not in only


def test_show_gives_metadata_params_and_extremes_with_steps(logdir):
    run = make_run(logdir)
    result = cli("show", "resnet", "--dir", str(logdir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"run {run.id}  vision/resnet" in out and "finished" in out and "cnn" in out
    assert '"lr": 0.1' in out and '"nan": NaN' in out
    row = next(line.split() for line in out.splitlines() if line.startswith("train/loss"))
    # KEY POINTS LAST AT MIN AT MAX AT
    assert row == ["train/loss", "3", "0.5", "20", "0.25", "10", "1", "0"]
    assert next(line.split() for line in out.splitlines() if line.startswith("eval/acc"))[2] == "NaN"


def test_export_csv_and_jsonl(logdir, tmp_path):
    run = make_run(logdir)
    result = cli("export", run.id, "--dir", str(logdir), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["step"] for r in rows] == ["0", "10", "20", "20"]
    assert rows[1]["train/loss"] == "0.25" and rows[1]["epoch"] == "1" and rows[3]["eval/acc"] == "nan"

    target = tmp_path / "out.jsonl"
    assert cli("export", run.id, "--dir", str(logdir), "--format", "jsonl", "-o", str(target)).returncode == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 10, 20, 20]
    assert records[3]["values"] == {"eval/acc": "NaN"}


def test_unknown_run_and_empty_logbook_say_what_to_do(logdir):
    empty = cli("list", "--dir", str(logdir))
    assert empty.returncode == 0 and "No runs in" in empty.stdout and "plain_loop.py" in empty.stdout
    missing = cli("show", "nope", "--dir", str(logdir))
    assert missing.returncode == 1 and "no run with id or name 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_installed_command_and_version():
    result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "--version"], capture_output=True, text=True)
    assert result.stdout.strip() == f"stepline {stepline.__version__}"


def serve(*args):
    return subprocess.run([sys.executable, "-m", "stepline.cli.main", "serve", *args], capture_output=True, text=True,
                          timeout=120)


def test_serve_refuses_a_port_that_is_not_one_and_names_who_holds_a_busy_one(logdir):
    result = serve(str(logdir), "--port", "99999")
    assert result.returncode != 0 and "'99999' is not a port: use a number from 1 to 65535" in result.stderr
    assert "serving" not in result.stdout
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = serve(str(logdir), "--port", str(port))
    assert result.returncode == 1 and "serving" not in result.stdout
    assert f"port {port} is in use (by pid {os.getpid()}); use --port to pick another" in result.stderr


def test_require_token_without_a_token_says_how_to_make_one(logdir):
    result = serve(str(logdir), "--require-token")
    assert result.returncode == 1
    assert "--require-token: every request needs a token" in result.stderr and "--host" not in result.stderr
    assert "stepline server token create --user NAME" in result.stderr
