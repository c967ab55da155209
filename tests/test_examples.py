"""Each example trains and leaves a finished, complete run: what a newcomer sees first."""

from __future__ import annotations

import subprocess
import sys

import pytest

from stepline import Logbook
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script, name, keys", [
    ("plain_loop.py", "plain-loop", {"train/loss", "epoch/loss", "epoch/weight"}),
    ("transformers_trainer.py", "bert-tiny", {"train/loss", "train/learning_rate", "eval/loss"}),
    ("lightning_module.py", "lightning-regressor", {"train/loss", "eval/loss"}),
    ("keras_fit.py", "keras-mlp", {"train/loss", "train/loss_running_mean", "eval/accuracy", "test/loss"}),
])
def test_example_tracks_a_finished_run(tmp_path, script, name, keys):
    result = subprocess.run([sys.executable, str(REPO / "examples" / script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={**__import__("os").environ, "STEPLINE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    view = Logbook(tmp_path).run(name, project="examples")
    assert view.status == "finished"
    assert keys <= set(view.metric_keys())
    assert f"stepline show {view.id}" in result.stdout
