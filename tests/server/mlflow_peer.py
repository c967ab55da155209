"""A real MLflow tracking server (`mlflow server`, sqlite store) on loopback, for the tests that push to MLflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.server.conftest import free_port, stop_group, wait_for_http


class MLflowServer:
    """A real `mlflow server` on loopback, in a process group of its own: stopping it stops its uvicorn and
    job workers too, also when it failed to start."""

    def __init__(self, folder, port=None, artifacts=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        command = shutil.which("mlflow") or os.path.join(os.path.dirname(sys.executable), "mlflow")
        artifacts = artifacts or ["--artifacts-destination", str(folder / "artifacts")]
        self.process = subprocess.Popen(
            [command, "server", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", *artifacts,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for_http(f"{self.url}/health", self.process, "mlflow server")
        except BaseException:
            self.stop()
            raise

    def client(self):
        import mlflow

        return mlflow.tracking.MlflowClient(tracking_uri=self.url)

    def stop(self):
        stop_group(self.process)
