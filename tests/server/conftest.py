from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`stepline serve` as a user starts it, on a free loopback port; stopped by the test that started it."""

    def __init__(self, logdir, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "stepline.cli.main", "serve", str(logdir),
                                         "--port", str(self.port), *extra],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                requests.get(f"{self.url}/api/v1/projects", timeout=1)
                return
            except requests.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(self.process.stderr.read()) from None
                time.sleep(0.1)
        raise RuntimeError("stepline serve did not start in 30 s")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class ThreadedApp:
    """An ASGI app (a peer's protocol double) served on a free loopback port from a thread of the test process."""

    def __init__(self, app, port: int | None = None) -> None:
        import threading

        import uvicorn

        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def server(logdir):
    started = []

    def start(*extra: str, port: int | None = None, root=None) -> ServerProcess:
        started.append(ServerProcess(root or logdir, *extra, port=port))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts")
