"""A job over several nodes pushed to a stepline server, from each node's own logbook (no shared file system):
the server shows one run with every node's machine, over either store, and `stepline sync --all` from a node
sends its part."""

from __future__ import annotations

import subprocess
import sys

import requests

from stepline.job import job_run_id
from tests.test_nodes import launch

NODE1_KEY = "system/node.1/memory.process_rss_mb"


def test_the_server_shows_one_run_with_every_node(store_args, server, tmp_path):
    served = server(*store_args, root=tmp_path / "served")
    launch(tmp_path / "nodes", "job-7", extra={"STEPLINE_REMOTE": served.url}, own_logbooks=True)
    api = f"{served.url}/api/v1/projects/job"
    run_id = job_run_id("job-7", "job", "train")

    [run] = requests.get(f"{api}/runs", timeout=30).json()["runs"]  # the part is not a run of its own
    assert run["id"] == run_id and run["status"] == "finished"
    [project] = requests.get(f"{served.url}/api/v1/projects", timeout=30).json()["projects"]
    assert project["runs"] == 1
    keys = requests.get(f"{api}/runs/{run_id}/metrics", timeout=30).json()["keys"]
    assert {"train/loss", "system/node.0/memory.process_rss_mb", NODE1_KEY} <= set(keys)
    series = requests.get(f"{api}/runs/{run_id}/series", params={"keys": f"train/loss,{NODE1_KEY}", "x": "time"},
                          timeout=30).json()["series"]
    assert [s["key"] for s in series] == ["train/loss", NODE1_KEY]
    assert series[0]["count"] == 10 and series[1]["count"] >= 1 and min(series[1]["y"]) > 0
    detail = requests.get(f"{api}/runs/{run_id}", timeout=30).json()
    assert NODE1_KEY in detail["metrics"]
    compared = requests.get(f"{api}/compare", params={"runs": run_id, "keys": NODE1_KEY}, timeout=30).json()
    assert compared["runs"][0]["series"][0]["count"] == series[1]["count"]

    # node 1's logbook holds its part only; sync --all sends it, and finds it all there
    result = subprocess.run([sys.executable, "-m", "stepline.cli.main", "sync", "--all", "--dir",
                             str(tmp_path / "nodes" / "node1"), "--remote", served.url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "1 of 1 runs synced" in result.stdout, result.stderr
    assert " 0 records and 0 files sent" in result.stderr

    assert requests.delete(f"{api}/runs/{run_id}", timeout=30).status_code == 200
    assert requests.get(f"{api}/runs/{run_id}.node1", timeout=30).status_code == 404  # its parts went with it
