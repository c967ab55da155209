from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Keras 3 runs on torch here; set before any test module imports keras.
os.environ.setdefault("KERAS_BACKEND", "torch")

import stepline
from stepline.job import LAUNCHER_VARIABLES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STEPLINE_* or launcher variable (rank, node, job id) from the developer's shell leaks into a test.
    The machine's figures are not sampled (a run of a second or more would get a sample of them at finish, and
    tests count records); tests/test_system_metrics.py turns them on where it tests them."""
    for name in list(os.environ):
        if name.startswith("STEPLINE_") or name in LAUNCHER_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("STEPLINE_SYSTEM_METRICS", "0")


@pytest.fixture(autouse=True)
def no_open_runs():
    yield
    while (run := stepline.current_run()) is not None:
        run.finish()


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return tmp_path / "logbook"


def wait_until(predicate, timeout: float, what: str = "the condition") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds (generous: the machine may be loaded)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        time.sleep(0.05)


def run_python(code: str, *, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, as a user's training script would run."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_python(code: str, *, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def torchrun_two_nodes(script: Path, job: str, *, per_node: int = 1, env: dict[str, str] | None = None,
                       cwd: Path | None = None) -> list[tuple[int, str, str]]:
    """torchrun launching ``script`` on two "nodes": two agents on this machine meeting on loopback, as two
    machines of a job would. Returns each agent's (exit code, stdout, stderr), node 0's first."""
    from tests.server.conftest import free_port, stop_group

    port = str(free_port())
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
                                str(per_node), "--node-rank", str(node), "--master-addr", "127.0.0.1",
                                "--master-port", port, "--rdzv-id", job, str(script)],
                               cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
              for node in range(2)]
    try:
        printed = [agent.communicate(timeout=300) for agent in agents]
    finally:
        for agent in agents:
            stop_group(agent)
    return [(agent.returncode, out, err) for agent, (out, err) in zip(agents, printed)]
