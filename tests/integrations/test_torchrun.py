"""torchrun itself launches a job over two nodes (two agents on this machine, meeting on loopback), and the
job is one run with both machines: what tests/test_nodes.py checks with the variables torchrun sets, here
with the variables it really sets."""

from __future__ import annotations

import pytest

from stepline import Logbook
from stepline.job import job_run_id
from tests.conftest import torchrun_two_nodes
from tests.test_nodes import WORKER


def test_torchrun_two_nodes_make_one_run(logdir, tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "train.py"
    script.write_text("\n".join(line[4:] for line in WORKER.splitlines()))
    ended = torchrun_two_nodes(script, "torchrun-job", per_node=2, env={
        "LOGDIR": str(logdir), "STEPLINE_SYSTEM_METRICS": "1", "STEPLINE_SYSTEM_INTERVAL": "0.1"})
    assert all(code == 0 for code, _, _ in ended), ended
    assert ended[0][1].count("DisabledRun") == 1 and "NodeRun" in ended[1][1], ended

    [run] = Logbook(logdir).runs("job")
    assert run.id == job_run_id("torchrun-job", "job", "train") and run.meta["nodes"] == 2
    assert run.series("train/loss").steps == list(range(10))
    assert run.series("system/node.1/memory.process_rss_mb").values
    assert run.series("system/node.0/memory.process_rss_mb").values
