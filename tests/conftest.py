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
from stepline.system import RANK_VARIABLES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No STEPLINE_* or rank variable from the developer's shell leaks into a test. The machine's figures are
    not sampled (a run of a second or more would get a sample of them at finish, and tests count records);
    tests/test_system_metrics.py turns them on where it tests them."""
    for name in list(os.environ):
        if name.startswith("STEPLINE_") or name in RANK_VARIABLES:
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
