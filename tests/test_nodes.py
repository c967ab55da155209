"""A job over several nodes is one run: rank zero records the training, each node's local rank zero its machine
(``system/node.<N>/``), other ranks nothing; a restarted job continues its run. Each process below is a real
interpreter given the variables torchrun gives its workers (tests/integrations/test_torchrun.py runs torchrun
itself); they record into one logbook, as nodes sharing a file system do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from stepline import Logbook
from stepline.job import job_run_id
from tests.conftest import start_python

NODES, PER_NODE = 2, 2
STEPS = 10

WORKER = """
    import os, time
    from pathlib import Path
    import stepline

    run = stepline.init(project="job", name="train", dir=os.environ["LOGDIR"])
    if os.environ["RANK"] == "0":
        for _ in range(STEPS):
            run.log({"train/loss": 1.0})
    # every recording process waits until a sample of its machine is on disk (a readiness wait, not a sleep)
    def samples():
        written = run.path / "metrics.jsonl"
        return written.read_bytes().count(b'"system/') if written.exists() else 0
    before, deadline = samples() if run.path else 0, time.monotonic() + 120
    while run.path is not None and run.system_interval is not None and time.monotonic() < deadline:
        run.flush()
        if samples() > before:
            break
        time.sleep(0.05)
    print("run", run.id, type(run).__name__)
    run.finish()
""".replace("STEPS", str(STEPS))


def launch(logdir, job: str | None, nodes: int = NODES, extra: dict[str, str] | None = None,
           own_logbooks: bool = False) -> list[str]:
    """Every rank of a job, all at once; returns what each printed, by global rank. ``own_logbooks``: each node
    keeps its logbook in ``logdir/node<N>`` (nodes that share no file system)."""
    processes = []
    for node in range(nodes):
        for local in range(PER_NODE):
            env = {"LOGDIR": str(logdir / f"node{node}" if own_logbooks else logdir),
                   "RANK": str(node * PER_NODE + local), "LOCAL_RANK": str(local),
                   "GROUP_RANK": str(node), "GROUP_WORLD_SIZE": str(nodes), "WORLD_SIZE": str(nodes * PER_NODE),
                   "LOCAL_WORLD_SIZE": str(PER_NODE), "STEPLINE_SYSTEM_METRICS": "1",
                   "STEPLINE_SYSTEM_INTERVAL": "0.1", **(extra or {})}
            if job is not None:
                env["TORCHELASTIC_RUN_ID"] = job
            processes.append(start_python(WORKER, env=env))
    printed = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        printed.append(out + err)
    return printed


def test_two_nodes_record_one_run_with_each_machine(logdir):
    printed = launch(logdir, "job-1")
    assert "NodeRun" in printed[2] and all("DisabledRun" in printed[i] for i in (1, 3))

    [run] = Logbook(logdir).runs("job")
    assert run.id == job_run_id("job-1", "job", "train") and run.meta["nodes"] == 2
    assert sorted(os.listdir(logdir / "job")) == [run.id, f"{run.id}.node1"]  # ranks 1 and 3 made nothing
    keys = run.metric_keys()
    assert {"system/node.0/memory.process_rss_mb", "system/node.1/memory.process_rss_mb"} <= set(keys)
    assert not [k for k in keys if k.startswith("system/") and not k.startswith("system/node.")]
    assert run.series("train/loss").steps == list(range(STEPS))
    node1 = run.series("system/node.1/memory.process_rss_mb")
    assert node1.values and all(v > 0 for v in node1.values)
    assert "system/node.1/memory.process_rss_mb" in run.summaries()
    [part] = run.nodes()
    assert part.meta["node_of"] == run.id and part.meta["node"] == 1 and part.status == "finished"
    assert "train/loss" not in part.metric_keys()  # a node records its machine only


def test_export_and_show_read_the_run_with_its_nodes(logdir):
    import csv
    import io

    launch(logdir, "job-6")
    [run] = Logbook(logdir).runs("job")
    cli = [sys.executable, "-m", "stepline.cli.main"]
    exported = subprocess.run([*cli, "export", run.id, "--dir", str(logdir)], capture_output=True, text=True,
                              check=True).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sum(1 for row in rows if row["train/loss"]) == STEPS
    assert any(row["system/node.1/memory.process_rss_mb"] for row in rows)  # node 1's samples, by time
    assert [float(row["timestamp"]) for row in rows] == sorted(float(row["timestamp"]) for row in rows)
    shown = subprocess.run([*cli, "show", f"{run.id}.node1", "--dir", str(logdir)], capture_output=True, text=True,
                           check=True).stdout
    assert "system/node.1/memory.process_rss_mb" in shown and "train/loss" not in shown


def test_a_restarted_job_continues_its_run_and_another_job_has_its_own(logdir):
    launch(logdir, "job-1")
    launch(logdir, "job-1")  # torchrun restarting the job: the same run id
    [run] = Logbook(logdir).runs("job")
    assert run.series("train/loss").steps == list(range(2 * STEPS)) and len(run.meta["resumed_at"]) == 1
    samples = run.series("system/node.1/memory.process_rss_mb")
    assert len(samples.steps) >= 2 and samples.steps == sorted(samples.steps)  # the part's steps carry on too

    launch(logdir, "job-2")
    runs = Logbook(logdir).runs("job")
    assert len(runs) == 2 and all(r.series("train/loss").steps == list(range(len(r.series("train/loss").steps)))
                                  for r in runs)


def test_a_job_that_resumes_a_run_by_id_brings_its_nodes_into_that_run(logdir):
    import stepline

    earlier = stepline.init(project="job", name="train", dir=logdir)
    earlier.log({"train/loss": 2.0})
    earlier.finish()
    launch(logdir, "job-4", extra={"STEPLINE_RESUME": earlier.id})
    [run] = Logbook(logdir).runs("job")
    assert run.id == earlier.id and run.meta["job"] == "job-4" and run.meta["nodes"] == 2
    assert run.series("train/loss").steps == list(range(STEPS + 1))
    assert run.series("system/node.1/memory.process_rss_mb").values


def test_a_peer_tracker_gets_rank_zero_s_machine_and_node_1_says_so(logdir):
    from tests.server.conftest import free_port

    dead = f"mlflow+http://127.0.0.1:{free_port()}"  # nothing listens: rank zero's records wait in the logbook
    printed = launch(logdir, "job-5", extra={"STEPLINE_REMOTE": dead, "STEPLINE_REMOTE_TIMEOUT": "1"})
    assert "sent to stepline servers only" in printed[2] and dead in printed[2]
    [run] = Logbook(logdir).runs("job")
    assert run.series("system/node.1/memory.process_rss_mb").values  # kept in the logbook all the same


def test_without_a_job_id_rank_zero_records_its_machine_and_says_how_to_record_all(logdir):
    printed = launch(logdir, None)
    assert "STEPLINE_JOB_ID" in printed[2]  # node 1's local rank zero says why its machine is missing
    [run] = Logbook(logdir).runs("job")
    assert "system/memory.process_rss_mb" in run.metric_keys() and not run.nodes()
    assert os.listdir(logdir / "job") == [run.id]


def test_with_the_machine_s_figures_off_the_other_nodes_record_nothing(logdir):
    printed = launch(logdir, "job-8", extra={"STEPLINE_SYSTEM_METRICS": "0"})
    assert "DisabledRun" in printed[2]
    [run] = Logbook(logdir).runs("job")
    assert os.listdir(logdir / "job") == [run.id] and run.metric_keys() == ["train/loss"]


def test_single_node_jobs_keep_plain_system_keys(logdir):
    launch(logdir, "job-3", nodes=1)
    [run] = Logbook(logdir).runs("job")
    assert "system/memory.process_rss_mb" in run.metric_keys() and "nodes" not in run.meta


def test_stepline_job_id_and_slurm_name_the_job():
    code = textwrap.dedent("""
        from stepline.job import job_placement
        print(job_placement())
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC", "STEPLINE_JOB"))}
    slurm = {"SLURM_JOB_ID": "811", "SLURM_STEP_ID": "2", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
             "SLURM_NODEID": "2", "SLURM_NNODES": "3"}
    out = subprocess.run([sys.executable, "-c", code], env={**env, **slurm}, capture_output=True, text=True).stdout
    assert out.strip() == "Placement(rank=5, local_rank=1, node=2, nodes=3, job='811.2')"
    out = subprocess.run([sys.executable, "-c", code], env={**env, **slurm, "STEPLINE_JOB_ID": "mine"},
                         capture_output=True, text=True).stdout
    assert "job='mine'" in out
